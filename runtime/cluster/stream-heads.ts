import type { JetStreamManager } from '@nats-io/jetstream';
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { decodeBatch, lastSeqHeader, subjectOf } from '../bus/event-message.ts';
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

/** The last seq a batch message holds: from its header, or (a message from before the header) from its body. */
function lastSeqOf(headers: MsgHdrs | undefined, body: () => Uint8Array): number | undefined {
  const named = headers?.get(lastSeqHeader);
  if (named !== undefined && named !== '') return Number(named);
  return decodeBatch(body()).events.at(-1)?.seq;
}

/**
 * Keeps the host's view of every partition's head current, whoever owns it: the stream's
 * tails once, then every published batch, seen through a core NATS subscription to the
 * stream's subjects (no consumer, nothing stored). The head comes from each message's
 * `Shardlog-Last-Seq` header, so no body is decoded, and a tick's messages are handed on
 * together, the newest head per partition. The subscription ends with the connection.
 */
export async function followStreamHeads(options: StreamHeadsOptions): Promise<void> {
  const { nc, jsm, stream, prefix, host, logger } = options;
  const seen = new Map<number, number>();
  let scheduled = false;
  const handOn = (): void => {
    scheduled = false;
    for (const [partition, seq] of seen) host.streamHead(partition, seq);
    seen.clear();
  };
  const subjectStem = `${prefix}.events.`.length;
  nc.subscribe(`${prefix}.events.*`, {
    callback: (error, message) => {
      if (error !== null) {
        logger.warn({ err: error }, 'the subscription to published batches failed: partition heads of other nodes stop updating');
        return;
      }
      let seq: number | undefined;
      try {
        seq = lastSeqOf(message.headers, () => message.data);
      } catch (failure) {
        logger.warn({ err: failure, subject: message.subject }, 'a message on an event subject is not a Shardlog batch: ignored');
        return;
      }
      const partition = Number(message.subject.slice(subjectStem));
      if (seq === undefined || !Number.isInteger(seq) || !Number.isInteger(partition)) return;
      if (seq > (seen.get(partition) ?? 0)) seen.set(partition, seq);
      if (!scheduled) {
        scheduled = true;
        setImmediate(handOn);
      }
    },
  });
  await Promise.all(
    Array.from({ length: host.partitions }, async (_, partition) => {
      const last = await jsm.streams.getMessage(stream, { last_by_subj: subjectOf(prefix, partition) });
      const seq = last === null ? undefined : lastSeqOf(last.header, () => last.data);
      if (seq !== undefined) host.streamHead(partition, seq);
    }),
  );
}
