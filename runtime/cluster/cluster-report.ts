import { connect } from '@nats-io/transport-node';
import { natsServerList } from '../bus/nats-servers.ts';
import { ClusterStore } from './cluster-store.ts';

export interface ClusterReport {
  partitions: number;
  leader: string | null;
  nodes: { nodeId: string; lastHeartbeatMsAgo: number; draining: boolean; owned: number; lagEvents: number; startedAt: string }[];
  assignments: { partition: number; owner: string; epoch: number; target: string | null }[];
  /** The node each projection is placed on (it runs there; its views are read there). */
  projections: { projection: string; node: string; epoch: number }[];
}

/** What `shardlog cluster status` prints: read straight from the cluster's KV buckets, no node needed. */
export async function clusterReport(options: { servers: string | string[]; prefix: string }): Promise<ClusterReport | undefined> {
  const nc = await connect({ servers: natsServerList(options.servers), maxReconnectAttempts: 0, timeout: 5_000, name: 'shardlog-cluster-status' });
  try {
    const store = await ClusterStore.openExisting(nc, options.prefix);
    const partitions = await store?.partitionCount();
    if (store === undefined || partitions === undefined) return undefined;
    const now = Date.now();
    const [leader, beats, assignments, placements] = await Promise.all([store.leaderId(), store.heartbeats(), store.assignments(), store.placements()]);
    return {
      partitions,
      leader: leader ?? null,
      nodes: beats
        .map((beat) => ({
          nodeId: beat.nodeId,
          lastHeartbeatMsAgo: Math.max(0, now - beat.at),
          draining: beat.draining,
          owned: beat.owned,
          lagEvents: beat.lagEvents,
          startedAt: new Date(beat.startedAt).toISOString(),
        }))
        .sort((a, b) => a.nodeId.localeCompare(b.nodeId)),
      assignments: [...assignments]
        .sort(([a], [b]) => a - b)
        .map(([partition, { assignment }]) => ({ partition, owner: assignment.owner, epoch: assignment.epoch, target: assignment.target ?? null })),
      projections: [...placements].sort(([a], [b]) => a.localeCompare(b)).map(([projection, { node, epoch }]) => ({ projection, node, epoch })),
    };
  } finally {
    await nc.close();
  }
}
