import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { Logger } from '../logger.ts';
import type { PartitionBatch } from './bus-event.ts';
import { decodeBatch } from './event-message.ts';
import { ensureEventStream } from './jetstream-relay.ts';

export interface StreamMessage {
  batch: PartitionBatch;
  streamSeq: number;
}

export interface ConsumeOptions {
  servers: string | string[];
  prefix: string;
  /** Replicas of the event stream if this creates it (default 1). */
  replicas?: number | undefined;
  /** The stream sequence to start at (1: the beginning). */
  startStreamSeq: number;
  /**
   * Gets the messages in stream order, as many at a time as have arrived (at most 512);
   * awaited before the next ones are handed over.
   */
  onMessages: (messages: StreamMessage[]) => Promise<void> | void;
  logger: Pick<Logger, 'warn' | 'error'>;
}

/**
 * Reads the event stream in stream order with an ordered consumer (no acks, nothing kept on
 * the server): JetStream's own delivery is not exactly-once, so the caller's checkpoints
 * decide what to apply. After a reconnect (a server restart loses the ephemeral consumer)
 * it opens a new one right after the last message it handed over.
 */
export async function consumePartitionBatches(options: ConsumeOptions): Promise<{ close(): Promise<void>; tailSeq: number }> {
  const nc = await connect({ servers: options.servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true, name: 'shardlog-projector' });
  let stream: string;
  let tailSeq: number;
  try {
    const jsm = await jetstreamManager(nc);
    stream = await ensureEventStream(jsm, options.prefix, { replicas: options.replicas });
    tailSeq = (await jsm.streams.info(stream)).state.last_seq;
  } catch (error) {
    await nc.close();
    throw error;
  }
  const js = jetstream(nc);
  let nextSeq = Math.max(1, options.startStreamSeq);
  let closed = false;
  let messages: ConsumerMessages | undefined;

  const open = async (): Promise<ConsumerMessages> => {
    const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: nextSeq });
    // Short pulls: a consumer lost with a restarted server is noticed in seconds, not the default 30 s.
    return consumer.consume({ max_messages: 512, expires: 5_000 });
  };
  messages = await open().catch(async (error: unknown) => {
    await nc.close();
    throw error;
  });

  void (async () => {
    for await (const status of nc.status()) if (status.type === 'reconnect') void messages?.close();
  })();

  const hand = async (handing: StreamMessage[]): Promise<void> => {
    if (handing.length === 0) return;
    try {
      await options.onMessages(handing);
    } catch (error) {
      options.logger.error({ err: error, streamSeq: handing.at(-1)!.streamSeq }, 'applying messages failed');
    }
  };

  const done = (async () => {
    while (!closed) {
      try {
        messages ??= await open();
        const iterator = messages[Symbol.asyncIterator]();
        let arrived: StreamMessage[] = [];
        const pull = (): Promise<IteratorResult<JsMsg>> => {
          const pending = iterator.next();
          // Awaited later, maybe after a hand-over: mark it handled so a failure then is not "unhandled".
          pending.catch(() => undefined);
          return pending;
        };
        let next = pull();
        for (;;) {
          // Hand over what has arrived once the next message is not already buffered. (The
          // iterator's getPending() is not usable for this: status callbacks it queues keep
          // it above zero with nothing buffered, and a batch would wait for ever.)
          const ready = arrived.length === 0 ? await next : await Promise.race([next, new Promise<undefined>((resolve) => setImmediate(resolve, undefined))]);
          if (ready === undefined) {
            const handing = arrived;
            arrived = [];
            await hand(handing);
            continue;
          }
          if (ready.done === true || closed) break;
          const message = ready.value;
          nextSeq = message.seq + 1;
          try {
            arrived.push({ batch: decodeBatch(message.data), streamSeq: message.seq });
          } catch (error) {
            options.logger.error({ err: error, streamSeq: message.seq, subject: message.subject }, 'skipping a message that is not a Shardlog batch');
          }
          next = pull();
          if (arrived.length >= 512) {
            const handing = arrived;
            arrived = [];
            await hand(handing);
          }
        }
        if (arrived.length > 0 && !closed) await hand(arrived);
      } catch (error) {
        if (!closed) options.logger.warn({ err: error }, 'the JetStream consumer stopped; opening it again');
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      messages = undefined;
    }
  })();

  return {
    /** The stream's last sequence when the consumer opened. */
    tailSeq,
    close: async () => {
      if (closed) return;
      closed = true;
      await messages?.close().catch((error: unknown) => options.logger.warn({ err: error }, 'could not close the JetStream consumer'));
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 2_000))]);
      await Promise.race([nc.close(), new Promise((resolve) => setTimeout(resolve, 2_000))]);
    },
  };
}
