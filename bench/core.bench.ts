/**
 * `npm run bench -- core`: the engine on the bank workload, beside the limits that bound it,
 * all measured in this one run: raw better-sqlite3 writing the same rows in transactions of
 * the batch size the runtime used, and Emmett's SQLite event store on the same workload.
 * The raw limit writes the same rows as the runtime, command ids included (time-ordered UUIDv7).
 * Two more bounds of the same run: the bare architecture pipeline (bench/baselines/) and a
 * one-table raw append (one event row per command, nothing else), both at the same batch size.
 * Knobs: BENCH_SECONDS (measured seconds per closed-loop run, default 10),
 * BENCH_MEMORY_ACCOUNTS (default 1,000,000), BENCH_SKIP_MEMORY=1, BENCH_SKIP_PEER=1.
 */
import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import app from '../actors/app.ts';
import bankOnly from './apps/bank-only.ts';
import { account } from '../actors/bank/account.ts';
import { decodeStored, decodeWire, encodeStored, encodeWire } from '../runtime/codec.ts';
import { newCommandId } from '../runtime/command-id.ts';
import { decide, evolve } from '../runtime/define/execute.ts';
import { createRuntime, type Durability } from '../runtime/index.ts';
import { generatedCommandKey } from '../runtime/shard/generated-command-key.ts';
import { migrate } from '../runtime/shard/migrations.ts';
import { LogIndex } from '../runtime/shard/log-index.ts';
import type { EventRow } from '../runtime/shard/event-row.ts';
import { ShardLog, type BatchWrite } from '../runtime/shard/shard-log.ts';
import { startBarePipeline } from './baselines/bare-pipeline.ts';
import { benchEmmettBank, probeEmmettConfigurations } from './peers/emmett.ts';
import { Latencies, round } from './support/latency.ts';
import type { BatchReport } from '../runtime/index.ts';
import { closedLoop, openLoop } from './support/load.ts';
import { cpuSpent, readCpu } from './support/cpu-time.ts';
import { envNumber, report, type ResultRow } from './support/results.ts';

const accounts = 1_000;
const inFlight = 64;
const durationMs = envNumber('BENCH_SECONDS', 10) * 1_000;
const warmupMs = Math.min(3_000, durationMs / 3);
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

const generatedKey = (now: number): Buffer => generatedCommandKey(newCommandId(now))!;

function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'shardlog-bench-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The pieces every command goes through, each alone. */
async function hotPieces(): Promise<ResultRow[]> {
  const state = { status: 'open' as const, owner: 'ada', balance: 10 };
  const ctx = { id: 'acc-1', commandId: 'c', now: new Date(), metadata: {} };
  const payload = { amount: 42 };
  const stored = encodeStored(payload);
  const batch = {
    type: 'commands',
    commands: Array.from({ length: 64 }, (_, index) => ({ commandId: randomUUID(), aggregate: 'account', id: `acc-${index}`, command: 'deposit', input: payload })),
  };
  const wire = encodeWire(batch);
  const temp = tempDir();
  const log = new ShardLog(join(temp.dir, 'append.db'), 'fsync', { shard: 0, shards: 1, partitions: 1 });
  let seq = 0;
  const appendBatch = (): BatchWrite => {
    const now = Date.now();
    const write: BatchWrite = { events: [], commands: [], generatedCommands: [], snapshots: [] };
    for (let index = 0; index < 64; index++) {
      seq += 1;
      write.events.push({ partition: 0, seq, stream: `account/acc-${seq}`, version: 1, type: 'Deposited', schema_version: 1, data: stored, meta: stored, recorded_at: now });
      write.generatedCommands!.push({ key: generatedKey(now), partition: 0, seq, events: 1, fingerprint: stored, stream: null, result: null });
    }
    return write;
  };

  const bench = new Bench({ time: 1_000, warmupTime: 200 });
  bench
    .add('decide + evolve (deposit)', () => {
      const decision = decide(account, state, 'deposit', payload, ctx);
      if (decision.kind === 'events') evolve(account, state, decision.events);
    })
    .add('codec: event payload encode + decode', () => decodeStored(encodeStored(payload)))
    .add('codec: 64-command batch encode + decode', () => decodeWire(encodeWire(batch)))
    .add('codec: 64-command batch decode', () => decodeWire(wire))
    .add('append: one 64-command batch (fsync)', () => log.commit(appendBatch()));
  await bench.run();
  log.close();
  temp.remove();
  return bench.tasks.map((task) => {
    const result = task.result as { throughput?: { mean: number }; latency?: { p50?: number; p99?: number } } | undefined;
    return {
      name: `hot: ${task.name}`,
      opsPerSec: round(result?.throughput?.mean ?? 0, 0),
      p50Ms: round(result?.latency?.p50 ?? Number.NaN, 4),
      p99Ms: round(result?.latency?.p99 ?? Number.NaN, 4),
    };
  });
}

interface RuntimeRun {
  row: ResultRow;
  meanBatch: number;
}

/**
 * The open loop's batches as the runtime reports them (`onBatch`): how big they were, their
 * round trip to the shard thread, and the transaction alone, timed on that thread. A tail
 * made by slow commits shows in `commitP99Ms`; one made elsewhere (the main thread, a
 * batch waiting behind another) shows as a round trip or latency far above it.
 */
class BatchTrace {
  private recording = false;
  private sizes = new Latencies();
  private roundTrips = new Latencies();
  private commits = new Latencies();
  private indexChunks = new Latencies();

  readonly onBatch = (batch: BatchReport): void => {
    if (!this.recording) return;
    this.sizes.record(batch.commands);
    this.roundTrips.record(batch.durationMs);
    if (batch.commitMs > 0) this.commits.record(batch.commitMs);
    if (batch.indexMs > 0) this.indexChunks.record(batch.indexMs);
  };

  start(): void {
    this.recording = true;
    this.sizes = new Latencies();
    this.roundTrips = new Latencies();
    this.commits = new Latencies();
    this.indexChunks = new Latencies();
  }

  summary(): Record<string, number> {
    this.recording = false;
    return {
      count: this.sizes.count,
      sizeP50: this.sizes.percentile(50),
      sizeP99: this.sizes.percentile(99),
      roundTripP50Ms: round(this.roundTrips.percentile(50)),
      roundTripP99Ms: round(this.roundTrips.percentile(99)),
      commitP50Ms: round(this.commits.percentile(50)),
      commitP99Ms: round(this.commits.percentile(99)),
      commitMaxMs: round(this.commits.percentile(100)),
      indexChunks: this.indexChunks.count,
      indexChunkP50Ms: round(this.indexChunks.percentile(50)),
      indexChunkMaxMs: round(this.indexChunks.percentile(100)),
    };
  }
}

/**
 * The bank workload through the runtime: 1,000 accounts, deposits, 64 in flight. With the
 * example app its projector thread folds every deposit into the views beside the shard
 * thread; `writePathOnly` runs the bank aggregate alone, the write path with nothing reading.
 */
async function runtimeClosedLoop(durability: Durability, { writePathOnly = false } = {}): Promise<RuntimeRun & { openLoops: ResultRow[] }> {
  const temp = tempDir();
  const trace = new BatchTrace();
  const runtime = await createRuntime({ app: writePathOnly ? bankOnly : app, dataDir: temp.dir, durability, logger: quiet, onBatch: trace.onBatch });
  try {
    await Promise.all(Array.from({ length: accounts }, (_, id) => runtime.dispatch({ aggregate: 'account', id: `acc-${id}`, command: 'open', input: { owner: 'bench' } })));
    const deposit = () => runtime.dispatch({ aggregate: 'account', id: `acc-${Math.floor(Math.random() * accounts)}`, command: 'deposit', input: { amount: 1 } });
    await closedLoop(deposit, { inFlight, warmupMs: 0, durationMs: warmupMs });
    const before = runtime.stats();
    const cpuBefore = readCpu(process.pid);
    const result = await closedLoop(deposit, { inFlight, warmupMs: 0, durationMs });
    const cpu = cpuSpent(process.pid, cpuBefore, readCpu(process.pid), result.ops + result.failures);
    const after = runtime.stats();
    const batches = after.reduce((sum, shard) => sum + shard.batches, 0) - before.reduce((sum, shard) => sum + shard.batches, 0);
    const commands = after.reduce((sum, shard) => sum + shard.commands, 0) - before.reduce((sum, shard) => sum + shard.commands, 0);
    const meanBatch = commands / Math.max(1, batches);
    const openLoops: ResultRow[] = [];
    if (durability === 'fsync' && !writePathOnly) {
      for (const share of [0.5, 0.8]) {
        const ratePerSec = Math.max(1, Math.round(result.opsPerSec * share));
        trace.start();
        const open = await openLoop(deposit, { ratePerSec, durationMs: Math.max(3_000, durationMs / 2) });
        openLoops.push({
          name: `core open-loop ${share * 100}% of max (${ratePerSec}/s, fsync)`,
          opsPerSec: round(open.opsPerSec, 0),
          ...open.latencies.summary(),
          failures: open.failures,
          dropped: open.dropped,
          batches: trace.summary(),
        });
      }
    }
    return {
      row: {
        name: writePathOnly ? `core bank deposits, bank aggregate alone (no projections or sagas), ${inFlight} in flight (${durability})` : `core bank deposits, ${inFlight} in flight (${durability})`,
        opsPerSec: round(result.opsPerSec, 0),
        ...result.latencies.summary(),
        failures: result.failures,
        meanBatch: round(meanBatch, 1),
        shards: runtime.shards,
        ...(cpu === undefined ? {} : { cpu }),
      },
      meanBatch,
      openLoops,
    };
  } finally {
    await runtime.close();
    temp.remove();
  }
}

const eventsAndCommandIds = (uniqueStreamVersion: boolean) => `CREATE TABLE events (
    partition INTEGER NOT NULL, seq INTEGER NOT NULL, stream TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL,
    schema_version INTEGER NOT NULL, data BLOB NOT NULL, meta BLOB, recorded_at INTEGER NOT NULL, PRIMARY KEY (partition, seq)${uniqueStreamVersion ? ', UNIQUE (stream, version)' : ''}
  ) WITHOUT ROWID;
  CREATE TABLE command_ids (id BLOB PRIMARY KEY, partition INTEGER NOT NULL, seq INTEGER, events INTEGER NOT NULL, fingerprint BLOB NOT NULL, stream TEXT, result BLOB) WITHOUT ROWID;`;

/**
 * How the raw references lay out the rows: `shard log` is today's (an append-only log, its
 * partition and stream indexes written behind the commit by the shard log's own LogIndex); `previous` the layout before
 * migration 4 (UNIQUE (stream, version) in every commit); `no stream index` neither.
 */
type RawLayout = 'shard log' | 'previous' | 'no stream index';

/**
 * The raw limit: better-sqlite3 alone, same schema, same rows per command (one event, one
 * command record), same WAL durability, in transactions of the runtime's mean batch size.
 */
function rawSqlite(durability: Durability, batchSize: number, layout: RawLayout = 'shard log'): ResultRow {
  const temp = tempDir();
  const db = new Database(join(temp.dir, 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${durability === 'fsync' ? 'FULL' : 'NORMAL'}`);
  if (layout === 'shard log') migrate(db);
  else db.exec(eventsAndCommandIds(layout === 'previous'));
  const logIndex = layout === 'shard log' ? new LogIndex(db, durability === 'fsync') : undefined;
  const insertEvent = logIndex
    ? db.prepare('INSERT INTO events (id, partition, seq, stream, version, type, schema_version, data, meta, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
    : db.prepare('INSERT INTO events (partition, seq, stream, version, type, schema_version, data, meta, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  const insertCommand = db.prepare('INSERT INTO command_ids (id, partition, seq, events, fingerprint, stream, result) VALUES (?, ?, ?, ?, ?, NULL, NULL)');
  const data = encodeStored({ amount: 1 });
  const meta = encodeStored({ commandId: randomUUID() });
  const fingerprint = Buffer.alloc(32, 7);
  const versions = new Map<number, number>();
  let seq = 0;
  let appended: [number, EventRow][] = [];
  const transaction = db.transaction((size: number) => {
    const now = Date.now();
    appended = [];
    for (let index = 0; index < size; index++) {
      const account = Math.floor(Math.random() * accounts);
      const version = (versions.get(account) ?? 0) + 1;
      versions.set(account, version);
      const partition = account % 64;
      seq += 1;
      const stream = `account/acc-${account}`;
      if (logIndex === undefined) {
        insertEvent.run(partition, seq, stream, version, 'Deposited', 1, data, meta, now);
      } else {
        const id = logIndex.takeRowIds(1);
        insertEvent.run(id, partition, seq, stream, version, 'Deposited', 1, data, meta, now);
        appended.push([id, { partition, seq, stream, version, type: 'Deposited', schema_version: 1, data, meta, recorded_at: now }]);
      }
      insertCommand.run(generatedKey(now), partition, seq, 1, fingerprint);
    }
  });
  const size = Math.max(1, Math.round(batchSize));
  const ends = performance.now() + durationMs;
  const started = performance.now();
  let commands = 0;
  while (performance.now() < ends) {
    transaction(size);
    if (logIndex !== undefined) {
      for (const [id, row] of appended) logIndex.appended(id, row);
      if (logIndex.due) logIndex.indexStep();
    }
    commands += size;
  }
  const seconds = (performance.now() - started) / 1_000;
  db.close();
  temp.remove();
  const described = { 'shard log': 'this layout (append-only, indexes behind the commit)', previous: 'the layout before migration 4 (UNIQUE (stream, version))', 'no stream index': 'no per-stream index' }[layout];
  return { name: `raw better-sqlite3, ${described}, ${size} rows/tx (${durability})`, opsPerSec: round(commands / seconds, 0), p50Ms: Number.NaN, p99Ms: Number.NaN };
}

/** The one-table raw append: one short event row per command, keyed by a global seq, nothing else. */
function oneTableAppend(batchSize: number): ResultRow {
  const temp = tempDir();
  const db = new Database(join(temp.dir, 'one-table.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE events (seq INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL, data BLOB NOT NULL)');
  const insert = db.prepare<[number, string, number, Buffer]>('INSERT INTO events (seq, stream, version, data) VALUES (?, ?, ?, ?)');
  const data = encodeStored({ amount: 1 });
  let seq = 0;
  const transaction = db.transaction((size: number) => {
    for (let index = 0; index < size; index++) insert.run(++seq, `account/acc-${Math.floor(Math.random() * accounts)}`, seq, data);
  });
  const size = Math.max(1, Math.round(batchSize));
  const started = performance.now();
  const ends = started + durationMs;
  let rows = 0;
  while (performance.now() < ends) {
    transaction(size);
    rows += size;
  }
  const seconds = (performance.now() - started) / 1_000;
  db.close();
  temp.remove();
  return { name: `raw one-table append, ${size} rows/tx (fsync)`, opsPerSec: round(rows / seconds, 0), p50Ms: Number.NaN, p99Ms: Number.NaN };
}

/** The bare architecture pipeline (bench/baselines/bare-pipeline.ts) on the same closed loop. */
async function barePipeline(): Promise<ResultRow> {
  const temp = tempDir();
  const bare = startBarePipeline(temp.dir);
  try {
    const deposit = () => bare.deposit(`account/acc-${Math.floor(Math.random() * accounts)}`, 1);
    await closedLoop(deposit, { inFlight, warmupMs: 0, durationMs: warmupMs });
    const cpuBefore = readCpu(process.pid);
    const result = await closedLoop(deposit, { inFlight, warmupMs: 0, durationMs });
    const cpu = cpuSpent(process.pid, cpuBefore, readCpu(process.pid), result.ops + result.failures);
    return {
      name: `bare pipeline (piscina + msgpackr + one tx per batch), ${inFlight} in flight (fsync)`,
      opsPerSec: round(result.opsPerSec, 0),
      ...result.latencies.summary(),
      failures: result.failures,
      ...(cpu === undefined ? {} : { cpu }),
    };
  } finally {
    await bare.close();
    temp.remove();
  }
}

function memory(): Record<string, unknown> | undefined {
  if (process.env.BENCH_SKIP_MEMORY === '1') return undefined;
  const script = fileURLToPath(new URL('./core-memory.ts', import.meta.url));
  const output = execFileSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', env: process.env, maxBuffer: 1 << 20 });
  return JSON.parse(output.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

export async function runCore(): Promise<void> {
  const rows: ResultRow[] = [];
  rows.push(...(await hotPieces()));
  const bare = await barePipeline();
  const fsync = await runtimeClosedLoop('fsync');
  const writePath = await runtimeClosedLoop('fsync', { writePathOnly: true });
  const relaxed = await runtimeClosedLoop('relaxed');
  const rawFsync = rawSqlite('fsync', fsync.meanBatch);
  const rawPrevious = rawSqlite('fsync', fsync.meanBatch, 'previous');
  const rawNoStreamIndex = rawSqlite('fsync', fsync.meanBatch, 'no stream index');
  const rawRelaxed = rawSqlite('relaxed', relaxed.meanBatch);
  const oneTable = oneTableAppend(fsync.meanBatch);
  rows.push(fsync.row, ...fsync.openLoops, writePath.row, relaxed.row, bare, rawFsync, rawPrevious, rawNoStreamIndex, rawRelaxed, oneTable);

  let emmett: Awaited<ReturnType<typeof benchEmmettBank>> | undefined;
  let emmettProbes: Awaited<ReturnType<typeof probeEmmettConfigurations>> | undefined;
  if (process.env.BENCH_SKIP_PEER !== '1') {
    const temp = tempDir();
    try {
      // The bench first: an abandoned 64-in-flight default-config probe ties up sqlite3's threads.
      emmett = await benchEmmettBank({ dir: join(temp.dir, 'bench'), accounts, inFlight, durationMs, warmupMs });
      emmettProbes = await probeEmmettConfigurations({ dir: join(temp.dir, 'probes'), accounts: 100, inFlight, commands: 500, timeoutMs: 15_000 });
    } finally {
      temp.remove();
    }
    rows.push({ name: `peer: ${emmett.name} (${emmett.config})`, opsPerSec: round(emmett.opsPerSec, 0), p50Ms: round(emmett.p50Ms), p99Ms: round(emmett.p99Ms), correct: emmett.correct });
  }
  const memoryResult = memory();
  report('core', rows, {
    ratios: {
      core_vs_bare_pipeline: round(fsync.row.opsPerSec / bare.opsPerSec, 3),
      write_path_vs_bare_pipeline: round(writePath.row.opsPerSec / bare.opsPerSec, 3),
      raw_sqlite_vs_without_stream_index: round(rawFsync.opsPerSec / rawNoStreamIndex.opsPerSec, 3),
      raw_sqlite_vs_previous_layout: round(rawFsync.opsPerSec / rawPrevious.opsPerSec, 3),
      core_vs_one_table_append: round(fsync.row.opsPerSec / oneTable.opsPerSec, 3),
      core_vs_raw_sqlite: round(fsync.row.opsPerSec / rawFsync.opsPerSec, 3),
      core_vs_raw_sqlite_relaxed: round(relaxed.row.opsPerSec / rawRelaxed.opsPerSec, 3),
      core_vs_emmett: emmett === undefined ? null : round(fsync.row.opsPerSec / emmett.opsPerSec, 1),
    },
    // CPU per command and the thread split of each closed loop: which thread, if any, is the bound.
    cpu: { core: fsync.row.cpu ?? null, bankAggregateAlone: writePath.row.cpu ?? null, barePipeline: bare.cpu ?? null },
    ...(emmett === undefined ? {} : { peer: { config: emmett.config, correct: emmett.correct, notes: emmett.notes, probes: emmettProbes } }),
    ...(memoryResult === undefined ? {} : { memory: memoryResult }),
  });
}
