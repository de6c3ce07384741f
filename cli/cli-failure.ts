/**
 * An expected failure of a command: printed as one line `shardlog: <message>`, never with a
 * stack, and the process exits with `exitCode` (1: the work failed, 2: the command line was wrong).
 */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';

  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}
