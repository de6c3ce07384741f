import type Database from 'better-sqlite3';
import { decodeStored, encodeStored } from '../codec.ts';
import type { SagaStatus } from '../define/saga-actor.ts';
import type { SagaActivity, SagaSummary, SagaWork } from '../protocol.ts';

/** A saga instance's row: written in the same transaction as the event that changed it. */
export interface SagaRow {
  stream: string;
  partition: number;
  saga: string;
  status: SagaStatus;
  startedAt: number;
  updatedAt: number;
  /** The outbox and timers, when there are any. */
  work: SagaWork | null;
  parked: number;
}

/** The row of an instance as a batch (or a copy from the stream) left it. */
export function sagaRowOf(activity: Pick<SagaActivity, 'stream' | 'partition' | 'saga' | 'to' | 'startedAt' | 'pending' | 'timers' | 'parked'>, now: number): SagaRow {
  const hasWork = activity.pending.length > 0 || Object.keys(activity.timers).length > 0;
  return {
    stream: activity.stream,
    partition: activity.partition,
    saga: activity.saga,
    status: activity.to,
    startedAt: activity.startedAt,
    updatedAt: now,
    work: hasWork ? { pending: activity.pending, timers: activity.timers } : null,
    parked: activity.parked,
  };
}

/** Where `sagas list` starts: instances still running, the longest-running first, then the finished, the latest first. */
const statusOrder = "CASE status WHEN 'running' THEN 0 ELSE 1 END, CASE status WHEN 'running' THEN started_at ELSE -updated_at END";

/** The saga tables of a shard log (migration 3). */
export class SagaTables {
  private readonly upsertRow;
  private readonly deleteRow;
  private readonly upsertRouted;

  constructor(private readonly db: Database.Database) {
    this.upsertRow = db.prepare<[string, number, string, string, number, number, Buffer | null, number]>(
      `INSERT INTO saga_instances (stream, partition, saga, status, started_at, updated_at, work, parked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (stream) DO UPDATE SET status = excluded.status, started_at = excluded.started_at, updated_at = excluded.updated_at, work = excluded.work, parked = excluded.parked`,
    );
    this.deleteRow = db.prepare<[string]>('DELETE FROM saga_instances WHERE stream = ?');
    this.upsertRouted = db.prepare<[number, number]>(
      `INSERT INTO saga_routed (partition, routed_seq) VALUES (?, ?)
       ON CONFLICT (partition) DO UPDATE SET routed_seq = MAX(routed_seq, excluded.routed_seq)`,
    );
  }

  /** Inside the caller's transaction. An instance that never started has no row. */
  write(row: SagaRow): void {
    if (row.status === 'new') {
      this.deleteRow.run(row.stream);
      return;
    }
    this.upsertRow.run(row.stream, row.partition, row.saga, row.status, row.startedAt, row.updatedAt, row.work === null ? null : encodeStored(row.work), row.parked);
  }

  /** Instances with an outbox or timers in these partitions. */
  work(partitions: readonly number[]): (SagaWork & { stream: string; partition: number })[] {
    if (partitions.length === 0) return [];
    const rows = this.db
      .prepare<number[], { stream: string; partition: number; work: Buffer }>(
        `SELECT stream, partition, work FROM saga_instances WHERE work IS NOT NULL AND partition IN (${partitions.map(() => '?').join(',')})`,
      )
      .all(...partitions);
    return rows.map(({ stream, partition, work }) => ({ stream, partition, ...decodeStored<SagaWork>(work) }));
  }

  list(query: { saga?: string | undefined; status?: string | undefined; partitions: readonly number[]; limit: number }): SagaSummary[] {
    const where = [`partition IN (${query.partitions.map(() => '?').join(',')})`];
    const parameters: (string | number)[] = [...query.partitions];
    if (query.saga !== undefined) {
      where.push('saga = ?');
      parameters.push(query.saga);
    }
    if (query.status !== undefined) {
      where.push('status = ?');
      parameters.push(query.status);
    }
    if (query.partitions.length === 0) return [];
    const rows = this.db
      .prepare<(string | number)[], { stream: string; partition: number; saga: string; status: SagaStatus; started_at: number; updated_at: number; work: Buffer | null; parked: number }>(
        `SELECT stream, partition, saga, status, started_at, updated_at, work, parked FROM saga_instances WHERE ${where.join(' AND ')} ORDER BY ${statusOrder} LIMIT ?`,
      )
      .all(...parameters, query.limit);
    return rows.map((row) => {
      const work = row.work === null ? undefined : decodeStored<SagaWork>(row.work);
      return {
        saga: row.saga,
        correlationId: row.stream.slice(row.saga.length + 1),
        partition: row.partition,
        status: row.status,
        startedAt: row.started_at,
        updatedAt: row.updated_at,
        pendingCommands: work?.pending.length ?? 0,
        timers: work === undefined ? 0 : Object.keys(work.timers).length,
        parked: row.parked,
      };
    });
  }

  /** Correlation ids of a saga's instances with parked inputs, the latest parked first. */
  parked(saga: string, partitions: readonly number[], limit: number): string[] {
    if (partitions.length === 0) return [];
    return this.db
      .prepare<(string | number)[], { stream: string }>(
        `SELECT stream FROM saga_instances WHERE saga = ? AND parked > 0 AND partition IN (${partitions.map(() => '?').join(',')}) ORDER BY updated_at DESC LIMIT ?`,
      )
      .all(saga, ...partitions, limit)
      .map(({ stream }) => stream.slice(saga.length + 1));
  }

  /** Per saga: instances running and when the oldest of them started, in these partitions. */
  running(partitions: readonly number[]): { saga: string; running: number; oldestStartedAt: number }[] {
    if (partitions.length === 0) return [];
    return this.db
      .prepare<number[], { saga: string; running: number; oldestStartedAt: number }>(
        `SELECT saga, COUNT(*) AS running, MIN(started_at) AS oldestStartedAt FROM saga_instances
         WHERE status = 'running' AND partition IN (${partitions.map(() => '?').join(',')}) GROUP BY saga`,
      )
      .all(...partitions);
  }

  routedSeqs(): Map<number, number> {
    const rows = this.db.prepare<[], { partition: number; routed_seq: number }>('SELECT partition, routed_seq FROM saga_routed').all();
    return new Map(rows.map((row) => [row.partition, row.routed_seq]));
  }

  /** [partition, seq, …]; never moves a mark backwards. */
  recordRouted(marks: readonly number[]): void {
    if (marks.length === 0) return;
    this.db.transaction(() => {
      for (let index = 0; index < marks.length; index += 2) this.upsertRouted.run(marks[index]!, marks[index + 1]!);
    })();
  }
}
