import { makeError, type ShardlogError } from '../errors.ts';
import { isUnplaceable } from './nats-errors.ts';

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
