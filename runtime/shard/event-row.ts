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
