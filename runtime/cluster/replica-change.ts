import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { streamNameOf } from '../bus/event-message.ts';
import { isStreamNotFound } from '../bus/nats-errors.ts';
import { natsServerList } from '../bus/nats-servers.ts';
import { placementRefusal } from '../bus/replicas.ts';
import { ClusterStore } from './cluster-store.ts';

export interface ReplicaChange {
  stream: string;
  from: number;
  to: number;
}

/**
 * What `shardlog cluster replicas <n>` does: sets the replica count of the event stream and
 * of every KV bucket of the cluster under `prefix` that exists (JetStream copies the data to
 * the new replicas, or drops the extra ones, while they keep serving). Refused with
 * SHARDLOG_NATS_REPLICAS_UNPLACEABLE if NATS cannot place them; what was changed before a
 * refusal stays changed, and running the command again finishes the rest.
 */
export async function changeReplicas(options: { servers: string | string[]; prefix: string; replicas: number }): Promise<ReplicaChange[]> {
  const nc = await connect({ servers: natsServerList(options.servers), maxReconnectAttempts: 0, timeout: 5_000, name: 'shardlog-cluster-replicas' });
  try {
    const jsm = await jetstreamManager(nc);
    const changes: ReplicaChange[] = [];
    for (const stream of [streamNameOf(options.prefix), ...ClusterStore.bucketsOf(options.prefix).map((bucket) => `KV_${bucket}`)]) {
      let from: number;
      try {
        from = (await jsm.streams.info(stream)).config.num_replicas;
      } catch (error) {
        if (isStreamNotFound(error)) continue;
        throw error;
      }
      if (from !== options.replicas) {
        try {
          await jsm.streams.update(stream, { num_replicas: options.replicas });
        } catch (error) {
          throw placementRefusal(error, stream, options.replicas);
        }
      }
      changes.push({ stream, from, to: options.replicas });
    }
    return changes;
  } finally {
    await nc.close();
  }
}
