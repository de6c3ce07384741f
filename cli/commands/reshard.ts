/** `shardlog reshard --shards <n>`: change a data dir's shard count offline, with a progress bar. */
import { Command } from 'commander';
import { Presets, SingleBar } from 'cli-progress';
import { dataOption, integer } from '../options.ts';
import type { CliOutput } from '../output.ts';

export function reshardCommand(output: CliOutput): Command {
  return new Command('reshard')
    .description('change the shard count of a data dir (offline: no node may be serving it); moves each partition’s rows to its new shard file')
    .addOption(dataOption())
    .requiredOption('--shards <n>', 'the new shard count T', integer(1, 1_024))
    .action(async (options: { data: string; shards: number }) => {
      // Loaded when the command runs, so that the other commands start without the runtime.
      const { reshardDataDir } = await import('../../runtime/index.ts');
      const bar = new SingleBar({ format: 'resharding [{bar}] {percentage}% | {value}/{total} rows | ETA {eta}s', stream: process.stderr }, Presets.shades_classic);
      let started = false;
      let result;
      try {
        result = reshardDataDir(options.data, options.shards, ({ copiedRows, totalRows }) => {
          if (!started) bar.start(totalRows, 0);
          started = true;
          bar.update(copiedRows);
        });
      } finally {
        if (started) bar.stop();
      }
      output.out(result.from === result.to ? `already ${result.to} shards: nothing to do\n` : `resharded ${options.data}: ${result.from} → ${result.to} shards, ${result.rows} rows moved\n`);
    });
}
