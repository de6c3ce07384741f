/**
 * The replay cases of the Akka Persistence TCK journal spec (JournalSpec), as one table that
 * every journal under test runs. A journal here is anything with gapless sequence numbers
 * from 1: one aggregate's stream (sequence number = aggregate version) or one partition
 * (sequence number = partition seq). Each holds five entries before the cases run, entry i
 * carrying payload `a-i`, the last two written by one command (the TCK's AtomicWrite of two).
 *
 * Bounds are the TCK's: `from` and `to` inclusive, `max` a count limit. Shardlog's reads take
 * an exclusive lower bound (`after`), so each target maps `from` to `after = from - 1`.
 */
import type { StoredEvent } from '../../runtime/protocol.ts';

export const unbounded = Number.MAX_SAFE_INTEGER;

export interface ReplayCase {
  name: string;
  from: number;
  to: number;
  max: number;
  /** The sequence numbers replayed, in order. */
  expected: number[];
}

export const writtenEntries = 5;

export const replayCases: readonly ReplayCase[] = [
  { name: 'replays all entries', from: 1, to: unbounded, max: unbounded, expected: [1, 2, 3, 4, 5] },
  { name: 'replays entries from a lower sequence number bound', from: 3, to: unbounded, max: unbounded, expected: [3, 4, 5] },
  { name: 'replays entries up to an upper sequence number bound', from: 1, to: 3, max: unbounded, expected: [1, 2, 3] },
  { name: 'replays entries up to a count limit', from: 1, to: unbounded, max: 3, expected: [1, 2, 3] },
  { name: 'replays entries between a lower and an upper bound', from: 2, to: 3, max: unbounded, expected: [2, 3] },
  { name: 'replays entries between a lower and an upper bound, up to a count limit', from: 2, to: 5, max: 2, expected: [2, 3] },
  { name: 'replays a single entry when the lower bound equals the upper bound', from: 2, to: 2, max: unbounded, expected: [2] },
  { name: 'replays a single entry when the count limit is 1', from: 2, to: 4, max: 1, expected: [2] },
  { name: 'replays nothing when the count limit is 0', from: 2, to: 4, max: 0, expected: [] },
  { name: 'replays nothing when the lower bound is above the upper bound', from: 3, to: 2, max: unbounded, expected: [] },
  // Not in the TCK as separate cases; they pin down the edges its cases imply.
  { name: 'replays everything from sequence number 0 (numbers start at 1)', from: 0, to: unbounded, max: unbounded, expected: [1, 2, 3, 4, 5] },
  { name: 'replays up to the end when the upper bound lies beyond it', from: 4, to: 10, max: unbounded, expected: [4, 5] },
  { name: 'replays nothing when the lower bound lies beyond the end', from: 6, to: unbounded, max: unbounded, expected: [] },
  { name: 'replays nothing when the whole range lies beyond the end', from: 7, to: 9, max: 5, expected: [] },
  { name: 'replays what there is when the count limit exceeds it', from: 1, to: 100, max: 10, expected: [1, 2, 3, 4, 5] },
];

/** One aggregate's stream, or one partition. */
export type JournalRef = { kind: 'stream'; aggregate: string; id: string } | { kind: 'partition'; partition: number };

/** What a journal under test must answer: the TCK's ReplayMessages and its highest sequence number. */
export interface ReplayTarget {
  replay(journal: JournalRef, from: number, to: number, max: number): Promise<StoredEvent[]>;
  highestSequenceNr(journal: JournalRef): Promise<number>;
}

/** The sequence number of an event within the journal it was replayed from. */
export function sequenceNrOf(journal: JournalRef, event: StoredEvent): number {
  return journal.kind === 'stream' ? event.version : Number(event.position.slice(event.position.indexOf(':') + 1));
}

/**
 * The exclusive lower bound and the row count a Shardlog read needs for a TCK range. Sequence
 * numbers are gapless, so an upper bound is a count: at most `to - after` rows follow `after`.
 */
export function shardlogBounds(from: number, to: number, max: number): { after: number; limit: number } {
  const after = Math.max(0, from - 1);
  return { after, limit: Math.max(0, Math.min(max, to - after)) };
}
