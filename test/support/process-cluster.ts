import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import type { ClusterReport } from '../../runtime/index.ts';
import { startNatsServer, type NatsServer } from './nats-server.ts';
import { killNodes, startNodeProcess, type NodeProcess } from './node-process.ts';

export const runProcess = promisify(execFile);
export const cliPath = fileURLToPath(new URL('../../cli/shardlog.mjs', import.meta.url));

export interface ProcessCluster {
  /** The nats-server of this test file (started before its tests). */
  readonly nats: NatsServer;
  /** A `shardlog start` process joining the cluster, killed after the file's tests. */
  startMember: (nodeId: string) => Promise<NodeProcess>;
  /** `shardlog cluster status --json`, as an operator sees it. */
  clusterStatus: () => Promise<ClusterReport>;
}

/** A cluster of `shardlog start` processes with `partitions` partitions on one real nats-server, for one test file. */
export function processCluster(partitions: number): ProcessCluster {
  let nats: NatsServer | undefined;
  const started: NodeProcess[] = [];
  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterAll(async () => {
    await killNodes(started);
    await nats?.stop();
  });
  const server = (): NatsServer => {
    if (nats === undefined) throw new Error('the nats-server starts in beforeAll: use the cluster inside tests');
    return nats;
  };
  return {
    get nats() {
      return server();
    },
    startMember: async (nodeId) => {
      const node = await startNodeProcess(nodeId, ['--nats', server().url, '--partitions', String(partitions), '--shards', '1']);
      started.push(node);
      return node;
    },
    clusterStatus: async () => {
      const { stdout } = await runProcess(process.execPath, [cliPath, 'cluster', 'status', '--json', '--nats', server().url]);
      return JSON.parse(stdout) as ClusterReport;
    },
  };
}
