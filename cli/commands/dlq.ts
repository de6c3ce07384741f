/**
 * `shardlog dlq list|retry|skip`: a projection's dead letters on a running node, or a saga's
 * (its instances with parked inputs, by correlation id).
 */
import { Command } from 'commander';
import type { DeadLetter } from '../../runtime/index.ts';
import { adminCall } from '../admin-client.ts';
import { integer, tokenOption, urlOption, type AdminOptions } from '../options.ts';
import type { CliOutput } from '../output.ts';

const projectionPath = (projection: string) => `/admin/projections/${encodeURIComponent(projection)}/dlq`;

function listCommand(output: CliOutput): Command {
  return new Command('list')
    .description('the events a projection has parked, or the saga instances with parked inputs, as JSON lines')
    .argument('<projection>', 'projection or saga name')
    .addOption(urlOption())
    .addOption(tokenOption())
    .option('--limit <n>', 'at most this many', integer(1, 10_000), 100)
    .action(async (projection: string, options: AdminOptions & { limit: number }) => {
      const { items } = await adminCall<{ items: DeadLetter[] }>(options, 'GET', `${projectionPath(projection)}?limit=${options.limit}`);
      for (const item of items) output.out(`${JSON.stringify(item)}\n`);
      if (items.length === 0) output.err(`shardlog: ${projection} has no dead letters\n`);
    });
}

/** A number is a projection's dead letter id (from 1); anything else names a saga instance. */
function deadLetterId(raw: string): number | string {
  return /^\d+$/.test(raw) ? integer(1, Number.MAX_SAFE_INTEGER)(raw) : raw;
}

function resolveCommand(output: CliOutput, action: 'retry' | 'skip'): Command {
  return new Command(action)
    .description(action === 'retry' ? 'apply a parked event again with the current code (resumes a halted projection)' : 'drop a parked event without applying it (resumes a halted projection past it)')
    .argument('<projection>', 'projection or saga name')
    .argument('<id>', "dead letter id (from dlq list): a projection's is a number, a saga's the instance's correlation id", deadLetterId)
    .addOption(urlOption())
    .addOption(tokenOption())
    .action(async (projection: string, id: number | string, options: AdminOptions) => {
      await adminCall(options, 'POST', `${projectionPath(projection)}/${encodeURIComponent(String(id))}/${action}`);
      output.out(`${action === 'retry' ? 'applied' : 'skipped'} dead letter ${id} of ${projection}\n`);
    });
}

export function dlqCommand(output: CliOutput): Command {
  return new Command('dlq')
    .description('dead letters: events a projection could not apply, inputs a saga could not handle')
    .addCommand(listCommand(output))
    .addCommand(resolveCommand(output, 'retry'))
    .addCommand(resolveCommand(output, 'skip'));
}
