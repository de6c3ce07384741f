/**
 * The thread side of the bare pipeline (see bare-pipeline.ts): decodes a batch, decides each
 * deposit trivially against an in-memory balance, appends one event row per command in one
 * transaction (WAL, synchronous=FULL), and answers the batch's versions.
 */
import Database from 'better-sqlite3';
import { Packr } from 'msgpackr';
import { isMainThread, workerData } from 'node:worker_threads';

if (isMainThread) throw new Error('bench/baselines/bare-pipeline-worker.ts runs only inside its piscina thread');

const codec = new Packr({ useRecords: false, mapsAsObjects: true });
const db = new Database((workerData as { file: string }).file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec('CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL)');
const insert = db.prepare<[number, string, number, Buffer]>('INSERT INTO events (seq, stream, version, data) VALUES (?, ?, ?, ?)');
const accounts = new Map<string, { balance: number; version: number }>();
let seq = 0;

const append = db.transaction((rows: [string, number, Buffer][]) => {
  for (const [stream, version, data] of rows) insert.run(++seq, stream, version, data);
});

export default function runBatch(message: Uint8Array): Uint8Array {
  const commands = codec.unpack(message) as { id: string; amount: number }[];
  const rows: [string, number, Buffer][] = [];
  const versions: number[] = [];
  for (const { id, amount } of commands) {
    const account = accounts.get(id) ?? { balance: 0, version: 0 };
    account.balance += amount;
    account.version += 1;
    accounts.set(id, account);
    rows.push([id, account.version, codec.pack({ amount })]);
    versions.push(account.version);
  }
  append(rows);
  const packed = codec.pack(versions);
  const owned = new Uint8Array(packed.byteLength);
  owned.set(packed);
  return owned;
}
