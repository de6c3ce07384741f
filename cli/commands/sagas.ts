/** `shardlog sagas list|show`: the saga instances of a running node, through its routes. */
import { Command, Option } from 'commander';
import type { SagaSummary, SagaView } from '../../runtime/index.ts';
import { adminCall } from '../admin-client.ts';
import { integer, tokenOption, urlOption, type AdminOptions } from '../options.ts';
import type { CliOutput } from '../output.ts';

function listCommand(output: CliOutput): Command {
  return new Command('list')
    .description('saga instances in the partitions the node serves, as JSON lines: running ones first, the longest-running (the stuck) first')
    .option('--saga <name>', 'only this saga')
    .addOption(new Option('--status <status>', 'only instances in this status').choices(['running', 'completed', 'compensated', 'timed-out']))
    .option('--limit <n>', 'at most this many', integer(1, 10_000), 100)
    .addOption(urlOption())
    .addOption(tokenOption())
    .action(async (options: AdminOptions & { saga?: string; status?: string; limit: number }) => {
      const query = new URLSearchParams({ limit: String(options.limit) });
      if (options.saga !== undefined) query.set('saga', options.saga);
      if (options.status !== undefined) query.set('status', options.status);
      const { items } = await adminCall<{ items: SagaSummary[] }>(options, 'GET', `/admin/sagas?${query.toString()}`);
      const now = Date.now();
      for (const item of items) {
        const runningFor = item.status === 'running' ? { runningForSeconds: Math.round((now - item.startedAt) / 1_000) } : {};
        output.out(`${JSON.stringify({ ...item, startedAt: new Date(item.startedAt).toISOString(), updatedAt: new Date(item.updatedAt).toISOString(), ...runningFor })}\n`);
      }
      if (items.length === 0) output.err('shardlog: no saga instances\n');
    });
}

function showCommand(output: CliOutput): Command {
  return new Command('show')
    .description('one saga instance: state, status, version, pending commands and timers')
    .argument('<saga>', 'saga name')
    .argument('<correlationId>', 'the instance (e.g. the order id)')
    .addOption(urlOption())
    .addOption(tokenOption())
    .action(async (saga: string, correlationId: string, options: AdminOptions) => {
      const instance = await adminCall<SagaView>(options, 'GET', `/sagas/${encodeURIComponent(saga)}/${encodeURIComponent(correlationId)}`);
      output.out(`${JSON.stringify(instance, null, 2)}\n`);
    });
}

export function sagasCommand(output: CliOutput): Command {
  return new Command('sagas').description('saga instances: list them (stuck first) or show one').addCommand(listCommand(output)).addCommand(showCommand(output));
}
