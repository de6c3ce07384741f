import type { JetStreamManager } from '@nats-io/jetstream';
import { makeError, type ShardlogError } from '../errors.ts';
import { isTimeout, isUnplaceable } from './nats-errors.ts';

/** How many replicas the streams Shardlog creates get, and who hears of one that exists with another count. */
export interface ReplicaLayout {
  /** Replicas of a stream or bucket Shardlog creates (default 1). */
  replicas?: number | undefined;
  /** Called with a stream (a KV bucket's is `KV_<bucket>`) that exists with another count than `replicas`. */
  onOtherReplicas?: ((stream: string, existing: number) => void) | undefined;
}

/** The operator's command that changes the replicas of what exists. */
export function replicasCommand(replicas: number): string {
  return `shardlog cluster replicas ${replicas}`;
}

export function otherReplicasMessage(stream: string, existing: number, wanted: number): string {
  return `${stream} has ${existing} replica${existing === 1 ? '' : 's'}, not the ${wanted} asked for (--nats-replicas); it keeps ${existing} until changed with '${replicasCommand(wanted)} --nats <urls>'`;
}

/** The refusal when NATS cannot place `stream` with `replicas`; other failures pass through unchanged. */
export function placementRefusal(error: unknown, stream: string, replicas: number): unknown {
  if (!isUnplaceable(error)) return error;
  const refusal: ShardlogError = makeError(
    'SHARDLOG_NATS_REPLICAS_UNPLACEABLE',
    `NATS cannot place ${stream} with ${replicas} replica${replicas === 1 ? '' : 's'}: that needs a NATS cluster of at least ${replicas} JetStream servers (--nats-replicas ${replicas})`,
    { stream, replicas },
    error,
  );
  return refusal;
}

/**
 * Runs `create` (which must be idempotent: creating what exists with the same config) again
 * when it times out, until `withinMs` has passed. JetStream answers the creation of a
 * replicated stream or bucket only once its replicas have elected a leader, which on a
 * loaded machine can outlast one API timeout (5 s) although the stream is being created.
 */
export async function patientlyCreating<T>(create: () => Promise<T>, withinMs = 30_000): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      return await create();
    } catch (error) {
      if (!isTimeout(error) || Date.now() >= deadline) throw error;
    }
  }
}

/**
 * Waits until each stream has a leader. JetStream answers the creation of a replicated stream
 * once its replicas are placed, possibly before they have elected a leader, and until then a
 * write or a consumer on it times out. A stream outside a NATS cluster has no election.
 */
export async function leadersElected(jsm: JetStreamManager, streams: readonly string[], withinMs = 30_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (const stream of streams) {
    for (;;) {
      try {
        const { cluster } = await jsm.streams.info(stream);
        if (cluster === undefined || cluster.leader !== undefined) break;
      } catch (error) {
        if (!isTimeout(error) || Date.now() >= deadline) throw error;
      }
      if (Date.now() >= deadline) throw makeError('SHARDLOG_NATS_REPLICAS_UNPLACEABLE', `${stream} has no leader ${withinMs / 1_000} s after it was created: are its NATS servers up?`, { stream });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
