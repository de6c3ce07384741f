/** `shardlog events <aggregate> <id>`: one aggregate's events as JSON lines, read from the data dir (works while a node serves it). */
import { Command, Option } from 'commander';
import { appOption, appUrl, dataOption, integer } from '../options.ts';
import type { CliOutput } from '../output.ts';

export function eventsCommand(output: CliOutput): Command {
  return new Command('events')
    .description('print one aggregate’s events as JSON lines (reads the data dir; works while a node serves it)')
    .argument('<aggregate>', 'aggregate type, e.g. account')
    .argument('<id>', 'aggregate id')
    .addOption(dataOption())
    .addOption(appOption())
    .addOption(new Option('--after <version>', 'only events after this version').argParser(integer(0, Number.MAX_SAFE_INTEGER)).default(0))
    .addOption(new Option('--limit <n>', 'at most this many').argParser(integer(1, 1_000_000)).default(1_000_000))
    .action(async (aggregate: string, id: string, options: { data: string; app?: string; after: number; limit: number }) => {
      // Loaded when the command runs, so that the other commands start without the runtime.
      const { loadApp, readStreamEvents } = await import('../../runtime/index.ts');
      const app = await loadApp(appUrl(options.app));
      const events = readStreamEvents(app, options.data, { aggregate, id, after: options.after, limit: options.limit });
      for (const event of events) output.out(`${JSON.stringify(event)}\n`);
      if (events.length === 0) output.err(`shardlog: ${aggregate}/${id} has no events${options.after > 0 ? ` after version ${options.after}` : ''}\n`);
    });
}
