import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { waitFor } from './wait-for.ts';

/**
 * A process whose parent can be held still, so that once killed it stays a zombie, dead but
 * unreaped, for as long as a test needs: the state a crashed server is in until its supervisor
 * (a shell, a container init that does not reap) calls wait(). The parent is a shell that
 * starts the process and waits for it; stopping the shell keeps it from reaping.
 */
export interface UnreapedProcess {
  pid: number;
  /** What the process wrote to stdout and stderr, for a failing test's message. */
  output: () => string;
  /** True while the process runs (its parent has not seen it exit). */
  running: () => boolean;
  /** SIGKILLs the process and resolves once it is a zombie its parent has not reaped. */
  killAndLeaveUnreaped: () => Promise<void>;
  /** Lets the parent reap the process (killing it first if it still runs) and resolves once both are gone. */
  reap: () => Promise<void>;
}

export async function spawnUnreaped(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<UnreapedProcess> {
  // fd 3 tells the test the process's pid and is closed before the process starts.
  const shell = spawn('sh', ['-c', '"$@" 3>&- & echo $! >&3; exec 3>&-; wait $!', 'sh', command, ...args], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    env,
  });
  let output = '';
  shell.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  shell.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const shellExited = new Promise<void>((resolve) => shell.once('exit', () => resolve()));
  const pidPipe = shell.stdio[3];
  if (pidPipe === null || pidPipe === undefined || !('on' in pidPipe)) throw new Error('no pid pipe to the shell');
  let pidText = '';
  pidPipe.on('data', (chunk: Buffer) => (pidText += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    pidPipe.once('end', resolve);
    pidPipe.once('error', reject);
  });
  const pid = Number.parseInt(pidText, 10);
  if (!Number.isSafeInteger(pid) || pid < 1) throw new Error(`the shell did not report a pid: "${pidText}" ${output}`);
  const shellPid = shell.pid;
  if (shellPid === undefined) throw new Error('the shell did not start');

  return {
    pid,
    output: () => output,
    running: () => {
      const state = processState(pid);
      return state !== undefined && state !== 'Z';
    },
    killAndLeaveUnreaped: async () => {
      process.kill(shellPid, 'SIGSTOP');
      await waitFor(() => processState(shellPid) === 'T', { timeoutMs: 10_000 });
      process.kill(pid, 'SIGKILL');
      await waitFor(() => processState(pid) === 'Z', { timeoutMs: 10_000 });
    },
    reap: async () => {
      if (shell.exitCode !== null || shell.signalCode !== null) return;
      if (processState(pid) !== undefined && processState(pid) !== 'Z') process.kill(pid, 'SIGKILL');
      process.kill(shellPid, 'SIGCONT');
      await shellExited;
    },
  };
}

/** The state letter of /proc/<pid>/stat (R, S, D, T, Z, …), or undefined once the pid is gone. */
export function processState(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  // The command name in parentheses may itself hold spaces or parentheses.
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}
