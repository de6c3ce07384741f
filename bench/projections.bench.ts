/**
 * `npm run bench -- projections`: how far behind the commands the read models run, and how
 * fast a projection rebuilds, each beside its limit measured in this same run.
 * - Lag, on the embedded bus and over JetStream (a local nats-server started here): the bank
 *   load (deposits over 1,000 accounts) at half the maximum rate measured just before; each
 *   command's lag is from its reply to the moment its position is applied in
 *   `account-balances` (the same signal `?after=` waits on).
 * - Rebuild: 1,000,000 events written into a data dir, then `account-balances` rebuilt from
 *   position 0; the raw limit reads and decodes the same logs without applying them.
 * Knobs: BENCH_SECONDS (per load phase, default 10), BENCH_REBUILD_EVENTS (default 1,000,000),
 * BENCH_SKIP_LAG=1, BENCH_SKIP_JETSTREAM=1, BENCH_SKIP_REBUILD=1.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import app from '../actors/app.ts';
import { encodeStored } from '../runtime/codec.ts';
import { newCommandId } from '../runtime/command-id.ts';
import { createRuntime, partitionOf, type Runtime } from '../runtime/index.ts';
import { ShardFileReader } from '../runtime/projection/shard-file-reader.ts';
import { ShardLog, type BatchWrite } from '../runtime/shard/shard-log.ts';
import { startNatsServer } from '../test/support/nats-server.ts';
import { Latencies, round } from './support/latency.ts';
import { closedLoop, openLoop } from './support/load.ts';
import { envNumber, report, type ResultRow } from './support/results.ts';

const accounts = 1_000;
const durationMs = envNumber('BENCH_SECONDS', 10) * 1_000;
const rebuildEvents = envNumber('BENCH_REBUILD_EVENTS', 1_000_000);
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'shardlog-bench-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

async function openAccounts(runtime: Runtime<typeof app>): Promise<void> {
  await Promise.all(Array.from({ length: accounts }, (_, index) => runtime.dispatch({ aggregate: 'account', id: `acc-${index}`, command: 'open', input: { owner: `owner-${index % 50}` } })));
}

/** Maximum rate, then half of it in an open loop, recording reply → applied for every command. */
async function projectionLag(bus: 'embedded' | 'JetStream'): Promise<{ rows: ResultRow[]; lag: { p50Ms: number; p99Ms: number; p999Ms: number; samples: number } }> {
  const temp = tempDir();
  const nats = bus === 'JetStream' ? await startNatsServer() : undefined;
  const runtime = await createRuntime({ app, dataDir: temp.dir, logger: quiet, nats: nats === undefined ? undefined : { servers: nats.url } });
  try {
    await openAccounts(runtime);
    const deposit = (index: number) => runtime.dispatch({ aggregate: 'account', id: `acc-${index % accounts}`, command: 'deposit', input: { amount: 1 } });
    const max = await closedLoop(deposit, { inFlight: 64, warmupMs: 2_000, durationMs: Math.max(3_000, durationMs / 2) });
    const lag = new Latencies();
    const waits: Promise<void>[] = [];
    const rate = Math.round(max.opsPerSec / 2);
    const half = await openLoop(
      async (index) => {
        const reply = await deposit(index);
        const repliedAt = performance.now();
        const [partition, seq] = reply.position!.split(':').map(Number) as [number, number];
        waits.push(runtime.projections.waitFor('account-balances', partition, seq, 60_000).then(() => lag.record(performance.now() - repliedAt)));
      },
      { ratePerSec: rate, durationMs },
    );
    await Promise.all(waits);
    return {
      rows: [
        { name: `${bus}: commands, closed loop (max rate)`, opsPerSec: round(max.opsPerSec, 0), ...max.latencies.summary() },
        { name: `${bus}: commands, open loop at 50% (${rate}/s)`, opsPerSec: round(half.opsPerSec, 0), ...half.latencies.summary() },
        { name: `${bus}: projection lag (reply → applied)`, opsPerSec: round(half.opsPerSec, 0), ...lag.summary() },
      ],
      lag: { ...lag.summary(), samples: lag.count },
    };
  } finally {
    await runtime.close();
    await nats?.stop();
    temp.remove();
  }
}

/** Writes `events` bank events straight into a fresh data dir's shard logs, as the runtime would have. */
async function seedLog(dataDir: string, events: number): Promise<void> {
  const runtime = await createRuntime({ app, dataDir, partitions: 64, shards: 1, logger: quiet });
  await runtime.close();
  const log = new ShardLog(join(dataDir, 'shards', '0.db'), 'relaxed', { shard: 0, shards: 1, partitions: 64 });
  const streams = 10_000;
  const versions = new Array<number>(streams).fill(0);
  const seqs = new Array<number>(64).fill(0);
  const opened = encodeStored({ owner: 'seeded' });
  const deposited = encodeStored({ amount: 3 });
  const meta = encodeStored({ commandId: newCommandId() });
  let write: BatchWrite = { events: [], commands: [], snapshots: [] };
  for (let index = 0; index < events; index++) {
    const account = index % streams;
    const stream = `account/seed-${account}`;
    const partition = partitionOf(stream, 64);
    const version = ++versions[account]!;
    const seq = ++seqs[partition]!;
    write.events.push({ partition, seq, stream, version, type: version === 1 ? 'AccountOpened' : 'Deposited', schema_version: 1, data: version === 1 ? opened : deposited, meta, recorded_at: Date.now() });
    if (write.events.length === 10_000) {
      commitAndIndex(log, write);
      write = { events: [], commands: [], snapshots: [] };
    }
  }
  if (write.events.length > 0) commitAndIndex(log, write);
  log.close();
}

/** A commit, then the indexing it made due, as the shard thread runs them. */
function commitAndIndex(log: ShardLog, write: BatchWrite): void {
  log.commit(write);
  while (log.indexDue) log.indexBehind();
}

/** Reads and decodes every event of the logs, as a projector does, without applying any. */
function rawRead(dataDir: string): { events: number; seconds: number } {
  const reader = new ShardFileReader(dataDir, 1);
  const started = performance.now();
  let events = 0;
  for (const [partition, head] of reader.heads()) {
    for (let after = 0; after < head; ) {
      const page = reader.read(partition, after, 1_000);
      events += page.length;
      after = page.at(-1)!.seq;
    }
  }
  const seconds = (performance.now() - started) / 1_000;
  reader.close();
  return { events, seconds };
}

async function rebuildSpeed(): Promise<{ rows: ResultRow[]; rebuild: Record<string, number> }> {
  const temp = tempDir();
  try {
    await seedLog(temp.dir, rebuildEvents);
    const raw = rawRead(temp.dir);
    const runtime = await createRuntime({ app, dataDir: temp.dir, logger: quiet });
    try {
      await waitUntil(async () => (await runtime.projections.statusOf('account-balances')).lagEvents === 0);
      const started = Date.now();
      await runtime.projections.rebuild('account-balances');
      await waitUntil(async () => {
        const status = await runtime.projections.statusOf('account-balances');
        return status.lastRebuild !== null && Date.parse(status.lastRebuild.finishedAt) >= started;
      });
      const { lastRebuild } = await runtime.projections.statusOf('account-balances');
      const rawRate = raw.events / raw.seconds;
      const rebuildRate = lastRebuild!.events / lastRebuild!.seconds;
      return {
        rows: [
          { name: `raw read + decode of ${raw.events} events (limit)`, opsPerSec: round(rawRate, 0), p50Ms: 0, p99Ms: 0 },
          { name: `rebuild account-balances from 0 (${lastRebuild!.events} events)`, opsPerSec: round(rebuildRate, 0), p50Ms: 0, p99Ms: 0 },
        ],
        rebuild: { events: lastRebuild!.events, seconds: round(lastRebuild!.seconds, 2), eventsPerSec: round(rebuildRate, 0), rawEventsPerSec: round(rawRate, 0), ratioToRaw: round(rebuildRate / rawRate, 3) },
      };
    } finally {
      await runtime.close();
    }
  } finally {
    temp.remove();
  }
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function runProjections(): Promise<void> {
  const skipLag = process.env.BENCH_SKIP_LAG === '1';
  const embedded = skipLag ? { rows: [], lag: null } : await projectionLag('embedded');
  const overJetStream = skipLag || process.env.BENCH_SKIP_JETSTREAM === '1' ? { rows: [], lag: null } : await projectionLag('JetStream');
  const rebuild = process.env.BENCH_SKIP_REBUILD === '1' ? { rows: [], rebuild: null } : await rebuildSpeed();
  report('projections', [...embedded.rows, ...overJetStream.rows, ...rebuild.rows], {
    targets: { lagP99MsEmbedded: 50, lagP99MsJetStream: 100, rebuildRatioToRaw: 0.5 },
    lagEmbedded: embedded.lag,
    lagJetStream: overJetStream.lag,
    rebuild: rebuild.rebuild,
  });
}
