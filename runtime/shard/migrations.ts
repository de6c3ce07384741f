import type { Database } from 'better-sqlite3';

/**
 * Numbered schema migrations of a shard log. `PRAGMA user_version` records how many have run;
 * append new ones at the end, never edit a published one.
 */
const migrations: readonly string[] = [
  `CREATE TABLE events (
     partition INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     stream TEXT NOT NULL,
     version INTEGER NOT NULL,
     type TEXT NOT NULL,
     schema_version INTEGER NOT NULL,
     data BLOB NOT NULL,
     meta BLOB,
     recorded_at INTEGER NOT NULL,
     PRIMARY KEY (partition, seq),
     UNIQUE (stream, version)
   ) WITHOUT ROWID;
   CREATE TABLE commands (
     id TEXT PRIMARY KEY,
     stream TEXT NOT NULL,
     fingerprint BLOB NOT NULL,
     result BLOB NOT NULL,
     recorded_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX commands_by_time ON commands (recorded_at);
   CREATE TABLE snapshots (
     stream TEXT PRIMARY KEY,
     version INTEGER NOT NULL,
     state BLOB NOT NULL,
     schema TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE relay (
     partition INTEGER PRIMARY KEY,
     published_seq INTEGER NOT NULL
   );
   CREATE TABLE shard_meta (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL
   ) WITHOUT ROWID;`,
  // Commands whose id the runtime generated (the common case): a 16-byte UUIDv7 key, pruned
  // by key range, so no time index; a command that appended events keeps only where they
  // are (its reply is rebuilt from them), so no result blob and no stream name either.
  // Records written before this migration stay in `commands` until retention prunes them.
  `CREATE TABLE command_ids (
     id BLOB PRIMARY KEY,
     partition INTEGER NOT NULL,
     seq INTEGER,
     events INTEGER NOT NULL,
     fingerprint BLOB NOT NULL,
     stream TEXT,
     result BLOB
   ) WITHOUT ROWID;`,
  // Saga instances beside their events: status for listing and metrics, `parked` (inputs
  // in its dead-letter list), and `work` (the outbox and timers, msgpack) while there is any, so a start or a partition that arrives
  // finds what to send and when without replaying every saga. `saga_routed`: how far each
  // partition's events have been delivered to sagas.
  `CREATE TABLE saga_instances (
     stream TEXT PRIMARY KEY,
     partition INTEGER NOT NULL,
     saga TEXT NOT NULL,
     status TEXT NOT NULL,
     started_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     work BLOB,
     parked INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX saga_instances_by_status ON saga_instances (status, started_at);
   CREATE INDEX saga_instances_with_work ON saga_instances (partition) WHERE work IS NOT NULL;
   CREATE INDEX saga_instances_parked ON saga_instances (saga, updated_at) WHERE parked > 0;
   CREATE TABLE saga_routed (
     partition INTEGER PRIMARY KEY,
     routed_seq INTEGER NOT NULL
   );`,
  // The per-stream index leaves the commit (ADR 0013): `events` is rebuilt without
  // UNIQUE (stream, version), whose entry at a random place of the tree cost every command a
  // page; `stream_index` (an integer per stream, from `streams`) is written behind the commit
  // up to each partition's mark in `stream_index_marks`, and filled at the next open.
  `CREATE TABLE events_by_partition (
     partition INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     stream TEXT NOT NULL,
     version INTEGER NOT NULL,
     type TEXT NOT NULL,
     schema_version INTEGER NOT NULL,
     data BLOB NOT NULL,
     meta BLOB,
     recorded_at INTEGER NOT NULL,
     PRIMARY KEY (partition, seq)
   ) WITHOUT ROWID;
   INSERT INTO events_by_partition SELECT partition, seq, stream, version, type, schema_version, data, meta, recorded_at FROM events ORDER BY partition, seq;
   DROP TABLE events;
   ALTER TABLE events_by_partition RENAME TO events;
   CREATE TABLE streams (
     name TEXT PRIMARY KEY,
     id INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE stream_index (
     stream_id INTEGER NOT NULL,
     version INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     PRIMARY KEY (stream_id, version)
   ) WITHOUT ROWID;
   CREATE TABLE stream_index_marks (
     partition INTEGER PRIMARY KEY,
     seq INTEGER NOT NULL
   );`,
  // The commit appends in one place (ADR 0013, update of 2026-12-03): `events` becomes a log in
  // row id order with no key per partition, and the (partition, seq) lookup joins the
  // per-stream one behind the commit, both pointing at row ids, each up to its mark in
  // `index_marks`. Rows keep their partition's seq order. The indexes are filled at the next open.
  `CREATE TABLE events_log (
     id INTEGER PRIMARY KEY,
     partition INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     stream TEXT NOT NULL,
     version INTEGER NOT NULL,
     type TEXT NOT NULL,
     schema_version INTEGER NOT NULL,
     data BLOB NOT NULL,
     meta BLOB,
     recorded_at INTEGER NOT NULL
   );
   INSERT INTO events_log (partition, seq, stream, version, type, schema_version, data, meta, recorded_at)
     SELECT partition, seq, stream, version, type, schema_version, data, meta, recorded_at FROM events ORDER BY partition, seq;
   DROP TABLE events;
   ALTER TABLE events_log RENAME TO events;
   DROP TABLE stream_index;
   DROP TABLE stream_index_marks;
   CREATE TABLE stream_index (
     stream_id INTEGER NOT NULL,
     version INTEGER NOT NULL,
     row INTEGER NOT NULL,
     PRIMARY KEY (stream_id, version)
   ) WITHOUT ROWID;
   CREATE TABLE partition_index (
     partition INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     row INTEGER NOT NULL,
     PRIMARY KEY (partition, seq)
   ) WITHOUT ROWID;
   CREATE TABLE index_marks (
     name TEXT PRIMARY KEY,
     row INTEGER NOT NULL
   ) WITHOUT ROWID;`,
];

export const schemaVersion = migrations.length;

export function migrate(db: Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new Error(`shard log ${db.name} has schema version ${current}, newer than this Shardlog (${migrations.length}): upgrade Shardlog`);
  }
  for (let version = current; version < migrations.length; version++) {
    db.transaction(() => {
      db.exec(migrations[version]!);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
