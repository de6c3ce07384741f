/** `shardlog cluster status`: the nodes sharing partitions over NATS, read from the cluster's KV buckets. */
import { Command, Option } from 'commander';
import type { ClusterReport } from '../../runtime/index.ts';
import { CliFailure } from '../cli-failure.ts';
import { natsPrefixOption, natsServers } from '../options.ts';
import type { CliOutput } from '../output.ts';

function printReport(output: CliOutput, report: ClusterReport): void {
  output.out(`partitions: ${report.partitions}   leader: ${report.leader ?? '(none)'}\n\nnode\tlast heartbeat\tstate\towned\tunpublished events\n`);
  for (const node of report.nodes) {
    output.out(`${node.nodeId}\t${node.lastHeartbeatMsAgo} ms ago\t${node.draining ? 'leaving' : 'serving'}\t${node.owned}\t${node.lagEvents}\n`);
  }
  output.out('\npartition\towner\tepoch\tmoving to\n');
  for (const row of report.assignments) output.out(`${row.partition}\t${row.owner}\t${row.epoch}\t${row.target ?? ''}\n`);
  const unassigned = report.partitions - report.assignments.length;
  if (unassigned > 0) output.out(`(${unassigned} partitions not assigned yet)\n`);
  if (report.projections.length > 0) output.out('\nprojection\tnode\tepoch\n');
  for (const row of report.projections) output.out(`${row.projection}\t${row.node}\t${row.epoch}\n`);
}

function statusCommand(output: CliOutput): Command {
  return new Command('status')
    .description('nodes, leader, partitions with their owners and epochs, projections with their nodes, and each node’s unpublished events')
    .addOption(new Option('--nats <url>', 'the cluster’s NATS server (or NATS_URL)').env('SHARDLOG_NATS'))
    .addOption(natsPrefixOption('the cluster’s subject prefix'))
    .option('--json', 'print JSON')
    .action(async (options: { nats?: string; natsPrefix: string; json?: boolean }) => {
      const servers = natsServers(options.nats);
      if (servers === undefined) throw new CliFailure('cluster status needs --nats <url> (or NATS_URL)', 2);
      // Loaded when the command runs, so that the other commands start without the runtime and NATS.
      const { clusterReport } = await import('../../runtime/index.ts');
      let report;
      try {
        report = await clusterReport({ servers, prefix: options.natsPrefix });
      } catch (error) {
        throw new CliFailure(`cannot read the cluster from ${servers}: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (report === undefined) throw new CliFailure(`no cluster with prefix "${options.natsPrefix}" on ${servers} (start a node with --nats and --node-id to create one)`);
      if (options.json === true) output.out(`${JSON.stringify(report, null, 2)}\n`);
      else printReport(output, report);
    });
}

export function clusterCommand(output: CliOutput): Command {
  return new Command('cluster').description('the nodes sharing partitions over NATS').addCommand(statusCommand(output));
}
