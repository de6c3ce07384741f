import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { decodeBatch, subjectOf } from '../bus/event-message.ts';
import type { Logger } from '../logger.ts';
import type { ClusterHost } from './cluster-host.ts';

export interface StreamHeadsOptions {
  nc: NatsConnection;
  jsm: JetStreamManager;
  stream: string;
  prefix: string;
  host: Pick<ClusterHost, 'partitions' | 'streamHead'>;
  logger: Logger;
}

/**
 * Keeps the host's view of every partition's head current, whoever owns it: the stream's
 * tails once, then every published batch, seen through a core NATS subscription to the
 * stream's subjects (no consumer, nothing stored). The subscription ends with the connection.
 */
export async function followStreamHeads(options: StreamHeadsOptions): Promise<void> {
  const { nc, jsm, stream, prefix, host, logger } = options;
  nc.subscribe(`${prefix}.events.*`, {
    callback: (error, message) => {
      if (error !== null) {
        logger.warn({ err: error }, 'the subscription to published batches failed: partition heads of other nodes stop updating');
        return;
      }
      let batch;
      try {
        batch = decodeBatch(message.data);
      } catch (failure) {
        logger.warn({ err: failure, subject: message.subject }, 'a message on an event subject is not a Shardlog batch: ignored');
        return;
      }
      const last = batch.events.at(-1);
      if (last !== undefined) host.streamHead(batch.partition, last.seq);
    },
  });
  await Promise.all(
    Array.from({ length: host.partitions }, async (_, partition) => {
      const last = await jsm.streams.getMessage(stream, { last_by_subj: subjectOf(prefix, partition) });
      const seq = last === null ? undefined : decodeBatch(last.data).events.at(-1)?.seq;
      if (seq !== undefined) host.streamHead(partition, seq);
    }),
  );
}
