import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { PartitionBatch } from './bus-event.ts';
import { decodeBatch } from './event-message.ts';
import { ensureEventStream } from './jetstream-relay.ts';

export interface ConsumeOptions {
  servers: string;
  prefix: string;
  /** The stream sequence to start at (1: the beginning). */
  startStreamSeq: number;
  /** Awaited before the next message is handed over. */
  onBatch: (batch: PartitionBatch, streamSeq: number) => Promise<void> | void;
  logger: { warn(details: object, message: string): void; error(details: object, message: string): void };
}

/**
 * Reads the event stream in stream order with an ordered consumer (no acks, nothing kept on
 * the server): JetStream's own delivery is not exactly-once, so the caller's checkpoints
 * decide what to apply. The consumer recreates itself across server restarts.
 */
export async function consumePartitionBatches(options: ConsumeOptions): Promise<{ close(): Promise<void> }> {
  const nc = await connect({ servers: options.servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, name: 'shardlog-projector' });
  let messages: ConsumerMessages | undefined;
  try {
    const stream = await ensureEventStream(await jetstreamManager(nc), options.prefix);
    const consumer = await jetstream(nc).consumers.get(stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, options.startStreamSeq),
      // No subject filter: the stream holds only event subjects, and nats-server 2.9 refuses filter_subjects.
    });
    messages = await consumer.consume({ max_messages: 512 });
  } catch (error) {
    await nc.close();
    throw error;
  }
  let closed = false;
  const done = (async () => {
    for await (const message of messages) {
      if (closed) break;
      let batch: PartitionBatch;
      try {
        batch = decodeBatch(message.data);
      } catch (error) {
        options.logger.error({ err: error, streamSeq: message.seq, subject: message.subject }, 'skipping a message that is not a Shardlog batch');
        continue;
      }
      try {
        await options.onBatch(batch, message.seq);
      } catch (error) {
        options.logger.error({ err: error, streamSeq: message.seq }, 'applying a message failed');
      }
    }
  })();
  return {
    close: async () => {
      if (closed) return;
      closed = true;
      await messages.close().catch(() => undefined);
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 2_000))]);
      await Promise.race([nc.close(), new Promise((resolve) => setTimeout(resolve, 2_000))]);
    },
  };
}
