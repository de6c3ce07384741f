/**
 * The `shardlog` program: `start` serves a node, `events` prints a stream, `reshard` changes the
 * shard count of a data dir, `projections` and `dlq` operate a running node's read models,
 * `sagas` lists and shows its saga instances,
 * `cluster status` reads a cluster from NATS. Importing this module starts nothing; `runCli`
 * runs one command line and resolves with its exit code.
 *
 * Exit codes: 0 done; 1 the work failed (one line on stderr); 2 the command line was wrong
 * (one line on stderr, and one naming the help to read).
 */
import { Command, type CommanderError } from 'commander';
import { CliFailure } from './cli-failure.ts';
import { clusterCommand } from './commands/cluster.ts';
import { dlqCommand } from './commands/dlq.ts';
import { eventsCommand } from './commands/events.ts';
import { projectionsCommand } from './commands/projections.ts';
import { reshardCommand } from './commands/reshard.ts';
import { sagasCommand } from './commands/sagas.ts';
import { startCommand } from './commands/start.ts';
import { processOutput, type CliOutput } from './output.ts';

/** A command line commander refused, with the (sub)command it was refused by. */
class UsageError extends Error {
  override readonly name = 'UsageError';

  constructor(
    readonly command: Command,
    readonly refusal: CommanderError,
  ) {
    super(refusal.message);
  }
}

function everyCommand(command: Command): Command[] {
  return [command, ...command.commands.flatMap(everyCommand)];
}

function commandPath(command: Command): string {
  return command.parent === null ? command.name() : `${commandPath(command.parent)} ${command.name()}`;
}

export function buildProgram(output: CliOutput): Command {
  const program = new Command('shardlog')
    .description('Event-sourcing actor runtime: shards, SQLite logs, HTTP edge')
    .addCommand(startCommand())
    .addCommand(eventsCommand(output))
    .addCommand(reshardCommand(output))
    .addCommand(projectionsCommand(output))
    .addCommand(dlqCommand(output))
    .addCommand(sagasCommand(output))
    .addCommand(clusterCommand(output));
  for (const command of everyCommand(program)) {
    // Help asked for goes to stdout; commander's own error output is replaced by one line
    // that runCli writes from the refusal, so nothing else may reach stderr.
    command
      .configureOutput({ writeOut: (text) => output.out(text), writeErr: () => undefined, outputError: () => undefined })
      .allowExcessArguments(false)
      .exitOverride((refusal) => {
        throw new UsageError(command, refusal);
      });
  }
  return program;
}

function usageMessage({ command, refusal }: UsageError): string {
  // A group command given no subcommand: commander would print the whole help to stderr.
  if (refusal.code === 'commander.help') {
    const names = command.commands.map((sub) => sub.name()).join(', ');
    return `missing ${command.parent === null ? '' : `${command.name()} `}command: ${names}`;
  }
  // Commander's messages start with "error: " and put a "Did you mean …?" on a line of its own.
  return refusal.message.replace(/^error: /, '').split('\n').join(' ');
}

function failureMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs one command line (the arguments after `shardlog`). Resolves with the exit code once the
 * command is done, or, for `start`, once the node serves (it then runs until a signal).
 */
export async function runCli(argv: readonly string[], output: CliOutput = processOutput()): Promise<number> {
  try {
    await buildProgram(output).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      // --help and `help <command>` end the same way, with the help already printed.
      if (error.refusal.exitCode === 0) return 0;
      output.err(`shardlog: ${usageMessage(error)}\nsee '${commandPath(error.command)} --help'\n`);
      return 2;
    }
    output.err(`shardlog: ${failureMessage(error).split('\n').join(' ')}\n`);
    return error instanceof CliFailure ? error.exitCode : 1;
  }
}
