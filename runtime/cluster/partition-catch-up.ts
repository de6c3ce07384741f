import { DeliverPolicy, JetStreamApiCodes, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { BusEvent } from '../bus/bus-event.ts';
import { decodeBatch, subjectOf } from '../bus/event-message.ts';
import { jetStreamApiCodeOf } from '../bus/nats-errors.ts';
import type { Logger } from '../logger.ts';

export interface CatchUpOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  prefix: string;
  partition: number;
  /** The local log's last seq of the partition: the copy starts right after it. */
  localHead: number;
  logger: Pick<Logger, 'warn'>;
  /** Appends events (consecutive, in seq order) to the local log. */
  append: (events: BusEvent[]) => Promise<void>;
  /** Events per append (default 2,000). */
  chunk?: number;
  /** A stream sequence at or before the first message still needed (from an earlier copy): saves reading the stream from its start. */
  fromStreamSeq?: number;
}

export interface CatchUpResult {
  /** The partition's last seq now in the local log. */
  head: number;
  /** The stream sequence of the last message copied or known to be held (0: none). */
  streamSeq: number;
}

/** Direct gets read at most this many messages; a longer copy goes through a consumer. */
const maxDirectReads = 32;

/**
 * The few messages after a known stream sequence, one direct get each (`next_by_subj`, served
 * from the server's per-subject index): a handoff's last copy, on the path commands wait on,
 * without creating a consumer. Undefined when there are more than `maxDirectReads`, or when
 * the server answering ends before the tail.
 */
async function copyDirect(options: CatchUpOptions, subject: string, start: number, localHead: number, tailSeq: number): Promise<CatchUpResult | undefined> {
  let head = localHead;
  let next = start;
  let streamSeq = 0;
  const events: BusEvent[] = [];
  for (let reads = 0; head < tailSeq; reads++) {
    if (reads >= maxDirectReads) return undefined;
    const message = await options.jsm.direct.getMessage(options.stream, { seq: next, next_by_subj: subject });
    // A replica answering direct gets can lag behind the stream's leader: let a consumer finish the copy.
    if (message === null) return undefined;
    streamSeq = message.seq;
    next = message.seq + 1;
    for (const event of decodeBatch(message.data).events) {
      if (event.seq <= head) continue;
      if (event.seq !== head + 1) throw new Error(`partition ${options.partition}: the stream jumps from seq ${head} to ${event.seq}`);
      events.push(event);
      head = event.seq;
    }
  }
  if (events.length > 0) await options.append(events);
  return { head, streamSeq };
}

/**
 * Brings a node's log of one partition up to the stream's tail, as the stream was when the
 * copy began (the partition's new owner does this before it serves). Returns the seq it
 * reached. Messages are read with an ordered consumer filtered to the partition's subject;
 * the events the log already has are skipped.
 */
export async function catchUpPartition(options: CatchUpOptions): Promise<CatchUpResult> {
  const subject = subjectOf(options.prefix, options.partition);
  const last = await options.jsm.streams.getMessage(options.stream, { last_by_subj: subject });
  if (last === null) return { head: options.localHead, streamSeq: 0 };
  const tail = decodeBatch(last.data);
  const tailSeq = tail.events.at(-1)?.seq ?? tail.firstSeq - 1;
  let head = options.localHead;
  if (tailSeq <= head) return { head, streamSeq: last.seq };
  const start = options.fromStreamSeq ?? 0;
  if (start > 0) {
    const direct = await copyDirect(options, subject, start, head, tailSeq);
    if (direct !== undefined) return direct;
  }
  const chunk = options.chunk ?? 2_000;
  const consumer = await options.js.consumers.get(
    options.stream,
    start > 0 ? { filter_subjects: subject, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start } : { filter_subjects: subject, deliver_policy: DeliverPolicy.All },
  );
  let streamSeq = 0;
  let pending: BusEvent[] = [];
  /** Appends what is pending; `whole` keeps back the last command's events, so no command's record is split across appends. */
  const flush = async (whole = false): Promise<void> => {
    let end = pending.length;
    if (whole) {
      const lastCommand = pending.at(-1)?.metadata.commandId;
      while (end > 0 && pending[end - 1]!.metadata.commandId === lastCommand) end--;
      if (end === 0) end = pending.length;
    }
    if (end === 0) return;
    const events = pending.slice(0, end);
    pending = pending.slice(end);
    await options.append(events);
  };
  try {
    while (head < tailSeq) {
      const messages = await consumer.fetch({ max_messages: 256, expires: 2_000 });
      let received = 0;
      for await (const message of messages) {
        received++;
        streamSeq = message.seq;
        for (const event of decodeBatch(message.data).events) {
          if (event.seq <= head) continue;
          if (event.seq !== head + 1) throw new Error(`partition ${options.partition}: the stream jumps from seq ${head} to ${event.seq}`);
          pending.push(event);
          head = event.seq;
          if (pending.length >= chunk) await flush(true);
        }
        if (head >= tailSeq) break;
      }
      if (received === 0 && head < tailSeq) throw new Error(`partition ${options.partition}: the stream stopped at seq ${head} before its tail ${tailSeq}`);
    }
    await flush();
  } finally {
    // The server also removes an idle ordered consumer by itself: a failed delete costs nothing but a warning.
    await consumer.delete().catch((error: unknown) => {
      if (jetStreamApiCodeOf(error) !== JetStreamApiCodes.ConsumerNotFound) options.logger.warn({ err: error, partition: options.partition }, 'could not delete the consumer of a partition copy');
    });
  }
  return { head, streamSeq };
}
