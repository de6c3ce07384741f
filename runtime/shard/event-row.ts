/** One row of a shard log's `events` table, as SQLite returns it. */
export interface EventRow {
  partition: number;
  seq: number;
  stream: string;
  version: number;
  type: string;
  schema_version: number;
  data: Buffer;
  meta: Buffer | null;
  recorded_at: number;
}

/** The columns of an EventRow, in the table's order (the table's `id` is the row's place in the log, not part of the event). */
export const eventColumns = 'partition, seq, stream, version, type, schema_version, data, meta, recorded_at';
