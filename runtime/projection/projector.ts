import type Database from 'better-sqlite3';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BusEvent, PartitionBatch } from '../bus/bus-event.ts';
import { decodeStored, encodeStored } from '../codec.ts';
import type { App } from '../define/app.ts';
import { upcast } from '../define/execute.ts';
import { handlerOf, keyFunctionOf, type AnyProjection, type ProjectionContext, type ProjectionEvent } from '../define/projection.ts';
import { formatPosition } from '../partitioning.ts';
import { isStorageFailure } from './storage-failure.ts';
import { openViewForWriting, type DeadLetterRow } from './view-store.ts';

/** Why an event stopped the projection, while it is halted. */
export interface Halt {
  deadLetterId: number;
  partition: number;
  seq: number;
  error: string;
}

/** `storage-failed`: the view file could not be written (disk full, I/O error); nothing was applied, try again later. */
export type ApplyOutcome = 'applied' | 'skipped' | 'gap' | 'halted' | 'storage-failed';

const firstRetryDelayMs = 50;
/** How long to wait before writing to a view file that failed (disk full, I/O error) again. */
const storageRetryDelayMs = 1_000;

/**
 * One projection version folding events into its view file. Each partition batch is applied
 * with its checkpoint in one transaction, so a crash at any point leaves documents and
 * checkpoint agreeing: the projector resumes from the checkpoint and counts nothing twice.
 */
export class Projector {
  readonly db: Database.Database;
  private readonly checkpoints = new Map<number, number>();
  private halt: Halt | undefined;
  /** The last failure to write the view file, for the log. */
  lastStorageFailure: unknown;
  private readonly context: ProjectionContext;
  private readonly selectDoc;
  private readonly upsertDoc;
  private readonly deleteDoc;
  private readonly upsertCheckpoint;
  private readonly insertDeadLetter;
  private readonly setMeta;
  private readonly attempts: number;
  applied = 0;

  constructor(
    private readonly app: App,
    readonly projection: AnyProjection,
    readonly file: string,
  ) {
    this.db = openViewForWriting(file, projection.indexes ?? []);
    this.context = { db: this.db };
    this.attempts = projection.attempts ?? 4;
    this.selectDoc = this.db.prepare<[string], { doc: string }>('SELECT doc FROM docs WHERE key = ?');
    this.upsertDoc = this.db.prepare<[string, string, number]>(
      'INSERT INTO docs (key, doc, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at',
    );
    this.deleteDoc = this.db.prepare<[string]>('DELETE FROM docs WHERE key = ?');
    this.upsertCheckpoint = this.db.prepare<[number, number, number]>(
      'INSERT INTO checkpoints (partition, seq, recorded_at) VALUES (?, ?, ?) ON CONFLICT (partition) DO UPDATE SET seq = excluded.seq, recorded_at = excluded.recorded_at',
    );
    this.insertDeadLetter = this.db.prepare<[number, number, Buffer, string, number, number]>(
      'INSERT OR REPLACE INTO dead_letters (partition, seq, event, error, attempts, parked_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.setMeta = this.db.prepare<[string, string]>('INSERT OR REPLACE INTO view_meta (key, value) VALUES (?, ?)');
    this.db.transaction(() => {
      const setupDone = this.db.prepare<[], { value: string }>("SELECT value FROM view_meta WHERE key = 'setup'").get();
      if (setupDone === undefined) {
        projection.setup?.(this.db);
        this.setMeta.run('setup', 'done');
        this.setMeta.run('projection', JSON.stringify({ name: projection.name, version: projection.version }));
      }
    })();
    for (const row of this.db.prepare<[], { partition: number; seq: number }>('SELECT partition, seq FROM checkpoints').all()) {
      this.checkpoints.set(row.partition, row.seq);
    }
    const halted = this.db.prepare<[], { value: string }>("SELECT value FROM view_meta WHERE key = 'halt'").get();
    this.halt = halted === undefined ? undefined : (JSON.parse(halted.value) as Halt);
  }

  checkpoint(partition: number): number {
    return this.checkpoints.get(partition) ?? 0;
  }

  allCheckpoints(): ReadonlyMap<number, number> {
    return this.checkpoints;
  }

  get halted(): Halt | undefined {
    return this.halt;
  }

  /**
   * Applies the part of a batch past this partition's checkpoint. A batch wholly at or below
   * it is skipped (a redelivery); one that starts past checkpoint + 1 is a gap and is not
   * applied: the caller refetches from the checkpoint.
   */
  async apply(batch: PartitionBatch): Promise<ApplyOutcome> {
    return (await this.applyAll([batch]))[0]!;
  }

  /**
   * Applies batches of several partitions (at most one batch per partition) in one
   * transaction when every handler succeeds; otherwise partition by partition, event by
   * event with retries, parking the event that keeps failing.
   */
  async applyAll(batches: readonly PartitionBatch[], streamSeq?: number): Promise<ApplyOutcome[]> {
    const outcomes: ApplyOutcome[] = [];
    const runs: { index: number; partition: number; events: BusEvent[] }[] = [];
    for (const [index, batch] of batches.entries()) {
      const checkpoint = this.checkpoint(batch.partition);
      const fresh = batch.events.filter((event) => event.seq > checkpoint);
      outcomes.push(fresh.length === 0 ? 'skipped' : fresh[0]!.seq !== checkpoint + 1 ? 'gap' : this.halt !== undefined ? 'halted' : 'applied');
      if (outcomes[index] === 'applied') runs.push({ index, partition: batch.partition, events: fresh });
    }
    if (runs.length === 0) return outcomes;
    try {
      this.applyInTransaction(runs, streamSeq);
      return outcomes;
    } catch (error) {
      if (isStorageFailure(error)) return this.storageFailed(outcomes, runs, error);
      // Some handler failed: find which event, retrying each alone, then park it.
      for (const run of runs) {
        if (this.halt !== undefined) {
          outcomes[run.index] = 'halted';
          continue;
        }
        for (const event of run.events) {
          const outcome = await this.applyWithRetries(event);
          if (outcome === 'storage-failed') return this.storageFailed(outcomes, runs, this.lastStorageFailure);
          if (outcome === 'halted') {
            outcomes[run.index] = 'halted';
            break;
          }
        }
      }
      return outcomes;
    }
  }

  /** The view file could not be written: nothing more is applied now; the caller tries again after a pause. */
  private async storageFailed(outcomes: ApplyOutcome[], runs: readonly { index: number }[], error: unknown): Promise<ApplyOutcome[]> {
    this.lastStorageFailure = error;
    for (const run of runs) if (outcomes[run.index] === 'applied') outcomes[run.index] = 'storage-failed';
    await sleep(storageRetryDelayMs);
    return outcomes;
  }

  private async applyWithRetries(event: BusEvent): Promise<'applied' | 'halted' | 'storage-failed'> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      try {
        this.applyInTransaction([{ partition: event.partition, events: [event] }]);
        return 'applied';
      } catch (error) {
        if (isStorageFailure(error)) {
          this.lastStorageFailure = error;
          return 'storage-failed';
        }
        lastError = error;
        if (attempt < this.attempts) await sleep(firstRetryDelayMs * 2 ** (attempt - 1));
      }
    }
    try {
      return this.park(event, lastError);
    } catch (error) {
      if (!isStorageFailure(error)) throw error;
      this.lastStorageFailure = error;
      return 'storage-failed';
    }
  }

  private park(event: BusEvent, error: unknown): 'applied' | 'halted' {
    const message = error instanceof Error ? error.message : String(error);
    const skip = this.projection.onError === 'skip';
    let halt: Halt | undefined;
    this.db.transaction(() => {
      const { lastInsertRowid } = this.insertDeadLetter.run(event.partition, event.seq, encodeStored(event), message.slice(0, 4_000), this.attempts, Date.now());
      if (skip) {
        this.upsertCheckpoint.run(event.partition, event.seq, event.recordedAt);
      } else {
        halt = { deadLetterId: Number(lastInsertRowid), partition: event.partition, seq: event.seq, error: message.slice(0, 4_000) };
        this.setMeta.run('halt', JSON.stringify(halt));
      }
    })();
    if (skip) {
      this.checkpoints.set(event.partition, event.seq);
      return 'applied';
    }
    this.halt = halt;
    return 'halted';
  }

  /** One transaction: every event's document change, then the checkpoints. Throws (and writes nothing) if any handler throws. */
  private applyInTransaction(runs: readonly { partition: number; events: readonly BusEvent[] }[], streamSeq?: number): void {
    const docs = new Map<string, unknown>();
    this.db.transaction(() => {
      if (streamSeq !== undefined) this.recordStreamPosition(streamSeq);
      for (const run of runs) for (const event of run.events) this.applyOne(event, docs);
      const now = Date.now();
      for (const [key, doc] of docs) {
        if (doc === null) this.deleteDoc.run(key);
        else this.upsertDoc.run(key, JSON.stringify(doc), now);
      }
      for (const run of runs) {
        const last = run.events[run.events.length - 1]!;
        this.upsertCheckpoint.run(run.partition, last.seq, last.recordedAt);
      }
    })();
    for (const run of runs) {
      this.checkpoints.set(run.partition, run.events[run.events.length - 1]!.seq);
      this.applied += run.events.length;
    }
  }

  private applyOne(event: BusEvent, docs: Map<string, unknown>): void {
    const type = `${event.aggregate}.${event.type}`;
    const handler = handlerOf(this.projection, type);
    if (handler === undefined) return;
    const aggregate = this.app.aggregateByName.get(event.aggregate);
    if (aggregate === undefined) return;
    const view: ProjectionEvent = {
      type,
      aggregate: event.aggregate,
      id: event.id,
      version: event.version,
      position: formatPosition(event.partition, event.seq),
      data: upcast(aggregate, event.type, event.schemaVersion, event.data),
      metadata: event.metadata,
      recordedAt: new Date(event.recordedAt),
    };
    const key = keyFunctionOf(this.projection, type)?.(view, this.context);
    if (key === null || key === undefined) return;
    if (typeof key !== 'string') throw new TypeError(`${this.projection.name}: key for ${type} returned ${typeof key}, not a string`);
    let doc = docs.get(key);
    if (doc === undefined) {
      const row = this.selectDoc.get(key);
      doc = row === undefined ? null : (JSON.parse(row.doc) as unknown);
    }
    const next = handler(doc ?? this.projection.initial(key), view, this.context);
    if (next === undefined) throw new TypeError(`${this.projection.name}: handler for ${type} returned undefined (return the document, or null to delete it)`);
    docs.set(key, next);
  }

  /** The JetStream stream sequence of the last message this projection has fully handled (0: none). */
  streamPosition(): number {
    const row = this.db.prepare<[], { value: string }>("SELECT value FROM view_meta WHERE key = 'stream_seq'").get();
    return row === undefined ? 0 : Number(row.value);
  }

  /**
   * Only a hint of where to resume consuming: the per-partition checkpoints decide what is
   * applied, so recording it apart from (and after) the documents costs no exactness.
   */
  recordStreamPosition(streamSeq: number): void {
    this.setMeta.run('stream_seq', String(streamSeq));
  }

  deadLetters(limit: number): DeadLetterRow[] {
    return this.db.prepare<[number], DeadLetterRow>('SELECT * FROM dead_letters ORDER BY id LIMIT ?').all(limit);
  }

  deadLetterCount(): number {
    return this.db.prepare<[], { count: number }>('SELECT COUNT(*) AS count FROM dead_letters').get()!.count;
  }

  /**
   * Applies a parked event again with the current code. While halted on it, success moves the
   * checkpoint past it and resumes; a skipped one is applied out of its original order.
   */
  retryDeadLetter(id: number): { applied: true } | { applied: false; error: string } {
    const row = this.deadLetter(id);
    const event = decodeStored<BusEvent>(row.event);
    const resumes = this.halt?.deadLetterId === id;
    try {
      const docs = new Map<string, unknown>();
      this.db.transaction(() => {
        this.applyOne(event, docs);
        const now = Date.now();
        for (const [key, doc] of docs) {
          if (doc === null) this.deleteDoc.run(key);
          else this.upsertDoc.run(key, JSON.stringify(doc), now);
        }
        this.resolveDeadLetter(id, event, resumes);
      })();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.db.prepare('UPDATE dead_letters SET error = ?, attempts = attempts + 1 WHERE id = ?').run(message.slice(0, 4_000), id);
      return { applied: false, error: message };
    }
    this.afterResolve(event, resumes);
    return { applied: true };
  }

  /** Drops a parked event without applying it; if the projection was halted on it, resumes past it. */
  skipDeadLetter(id: number): void {
    const row = this.deadLetter(id);
    const event = decodeStored<BusEvent>(row.event);
    const resumes = this.halt?.deadLetterId === id;
    this.db.transaction(() => this.resolveDeadLetter(id, event, resumes))();
    this.afterResolve(event, resumes);
  }

  private deadLetter(id: number): DeadLetterRow {
    const row = this.db.prepare<[number], DeadLetterRow>('SELECT * FROM dead_letters WHERE id = ?').get(id);
    if (row === undefined) throw new DeadLetterMissing(id);
    return row;
  }

  private resolveDeadLetter(id: number, event: BusEvent, resumes: boolean): void {
    this.db.prepare('DELETE FROM dead_letters WHERE id = ?').run(id);
    if (resumes) {
      this.upsertCheckpoint.run(event.partition, event.seq, event.recordedAt);
      this.db.prepare("DELETE FROM view_meta WHERE key = 'halt'").run();
    }
  }

  private afterResolve(event: BusEvent, resumes: boolean): void {
    if (!resumes) return;
    this.checkpoints.set(event.partition, event.seq);
    this.halt = undefined;
  }

  /** Leaves the file with no WAL beside it, so it can be renamed whole. */
  closeForRename(): void {
    this.db.pragma('journal_mode = DELETE');
    this.db.close();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

export class DeadLetterMissing extends Error {
  constructor(readonly id: number) {
    super(`no dead letter ${id}`);
  }
}
