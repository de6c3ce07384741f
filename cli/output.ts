/**
 * Where the CLI writes. Commands never touch process.stdout directly, so a test can run the
 * program in-process and read what it printed.
 */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

let closedPipeHandled = false;

/** The process's own streams, for the `shardlog` executable. */
export function processOutput(): CliOutput {
  if (!closedPipeHandled) {
    closedPipeHandled = true;
    // `shardlog … | head` closes the pipe early: that is the reader being done, not a failure.
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') process.exit(0);
      throw error;
    });
  }
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
  };
}
