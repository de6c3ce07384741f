/** `shardlog cluster status`: the nodes sharing partitions over NATS, read from the cluster's KV buckets. */
import { Command, Option } from 'commander';
import type { ClusterReport } from '../../runtime/index.ts';
import { CliFailure } from '../cli-failure.ts';
import { integer, natsPrefixOption, natsServers } from '../options.ts';
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
    .addOption(new Option('--nats <urls>', 'the cluster’s NATS server(s), comma-separated (or NATS_URL)').env('SHARDLOG_NATS'))
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

function replicasCommand(output: CliOutput): Command {
  return new Command('replicas')
    .description('set the replica count of the event stream and every KV bucket of the cluster (nodes keep serving)')
    .argument('<n>', 'replicas, 1 to 5 (more than 1 needs a NATS cluster of at least that many servers)', integer(1, 5))
    .addOption(new Option('--nats <urls>', 'the cluster’s NATS server(s), comma-separated (or NATS_URL)').env('SHARDLOG_NATS'))
    .addOption(natsPrefixOption('the cluster’s subject prefix'))
    .action(async (replicas: number, options: { nats?: string; natsPrefix: string }) => {
      const servers = natsServers(options.nats);
      if (servers === undefined) throw new CliFailure('cluster replicas needs --nats <urls> (or NATS_URL)', 2);
      const { changeReplicas } = await import('../../runtime/index.ts');
      let changes;
      try {
        changes = await changeReplicas({ servers, prefix: options.natsPrefix, replicas });
      } catch (error) {
        throw new CliFailure(`cannot change the replicas on ${servers}: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (changes.length === 0) throw new CliFailure(`no stream or bucket with prefix "${options.natsPrefix}" on ${servers} (a node creates them with --nats-replicas ${replicas})`);
      for (const change of changes) output.out(change.from === change.to ? `${change.stream}: ${change.to} replicas already\n` : `${change.stream}: ${change.from} → ${change.to} replicas\n`);
    });
}

export function clusterCommand(output: CliOutput): Command {
  return new Command('cluster').description('the nodes sharing partitions over NATS').addCommand(statusCommand(output)).addCommand(replicasCommand(output));
}
