/** `shardlog projections list|status|rebuild`: the read models of a running node, through its admin routes. */
import { Command } from 'commander';
import { Presets, SingleBar } from 'cli-progress';
import { setTimeout as delay } from 'node:timers/promises';
import type { ProjectionStatus } from '../../runtime/index.ts';
import { adminCall } from '../admin-client.ts';
import { CliFailure } from '../cli-failure.ts';
import { tokenOption, urlOption, type AdminOptions } from '../options.ts';
import type { CliOutput } from '../output.ts';

const rebuildPollMs = 250;

function statusLine(status: ProjectionStatus): string {
  const halted = status.halted === null ? '' : ` HALTED at ${status.halted.partition}:${status.halted.seq} (dead letter ${status.halted.deadLetterId}: ${status.halted.error})`;
  const node = status.node === undefined ? '' : ` on ${status.node}`;
  return `${status.name} v${status.version}${node}: ${status.state}, checkpoint ${status.checkpoint}/${status.head}, lag ${status.lagEvents} events ${status.lagMs} ms, dead letters ${status.deadLetters}${halted}\n`;
}

async function allProjections(options: AdminOptions): Promise<ProjectionStatus[]> {
  return (await adminCall<{ projections: ProjectionStatus[] }>(options, 'GET', '/admin/projections')).projections;
}

function listCommand(output: CliOutput): Command {
  return new Command('list')
    .description('every projection with its version and state')
    .addOption(urlOption())
    .addOption(tokenOption())
    .action(async (options: AdminOptions) => {
      // In a cluster each line also names the node that runs the projection.
      for (const status of await allProjections(options)) output.out(`${status.name}\tv${status.version}\t${status.state}${status.node === undefined ? '' : `\t${status.node}`}\n`);
    });
}

function statusCommand(output: CliOutput): Command {
  return new Command('status')
    .description('checkpoint, lag in events and milliseconds, dead letters (of one projection, or all)')
    .argument('[name]', 'projection name')
    .addOption(urlOption())
    .addOption(tokenOption())
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, options: AdminOptions & { json?: boolean }) => {
      const all = name === undefined ? await allProjections(options) : [await adminCall<ProjectionStatus>(options, 'GET', `/admin/projections/${encodeURIComponent(name)}`)];
      if (options.json === true) output.out(`${JSON.stringify(name === undefined ? all : all[0], null, 2)}\n`);
      else for (const status of all) output.out(statusLine(status));
    });
}

function rebuildCommand(output: CliOutput): Command {
  return new Command('rebuild')
    .description('build the projection again from position 0 beside the serving one, then switch reads over to it')
    .argument('<name>', 'projection name')
    .addOption(urlOption())
    .addOption(tokenOption())
    .action(async (name: string, options: AdminOptions) => {
      const path = `/admin/projections/${encodeURIComponent(name)}`;
      const started = Date.now();
      await adminCall(options, 'POST', `${path}/rebuild`);
      const bar = new SingleBar({ format: `rebuilding ${name} [{bar}] {percentage}% | {value}/{total} events | {rate} events/s | ETA {eta}s`, stream: process.stderr }, Presets.shades_classic);
      bar.start(1, 0, { rate: 0 });
      try {
        for (;;) {
          const status = await adminCall<ProjectionStatus>(options, 'GET', path);
          if (status.rebuild === null) {
            bar.update(bar.getTotal());
            bar.stop();
            const last = status.lastRebuild;
            if (last === null || Date.parse(last.finishedAt) < started - 1_000) throw new CliFailure(`the rebuild of ${name} stopped without finishing (was the node restarted?)`);
            output.out(`rebuilt ${name}: ${last.events} events in ${last.seconds.toFixed(1)} s; reads now use the new build\n`);
            return;
          }
          if (status.rebuild.halted !== null) throw new CliFailure(`the rebuild of ${name} halted on ${status.rebuild.halted.partition}:${status.rebuild.halted.seq}: ${status.rebuild.halted.error}`);
          bar.setTotal(Math.max(1, status.rebuild.total));
          bar.update(status.rebuild.done, { rate: status.rebuild.eventsPerSecond });
          await delay(rebuildPollMs);
        }
      } finally {
        bar.stop();
      }
    });
}

export function projectionsCommand(output: CliOutput): Command {
  return new Command('projections')
    .description('read models on a running node: list, status, rebuild')
    .addCommand(listCommand(output))
    .addCommand(statusCommand(output))
    .addCommand(rebuildCommand(output));
}
