/**
 * The memory part of the core suite, run in its own process so its peak RSS is its own:
 * opens BENCH_MEMORY_ACCOUNTS accounts with the live-actor cap at its default, then reopens
 * the data dir and measures how long a cold actor takes to load. Prints one JSON line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import app from '../actors/app.ts';
import { createRuntime } from '../runtime/index.ts';
import { Latencies, round } from './support/latency.ts';
import { closedLoop } from './support/load.ts';
import { envNumber } from './support/results.ts';

const accounts = envNumber('BENCH_MEMORY_ACCOUNTS', 1_000_000);
const dataDir = mkdtempSync(join(tmpdir(), 'shardlog-bench-memory-'));
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
try {
  const runtime = await createRuntime({ app, dataDir, logger: quiet });
  const started = performance.now();
  let opened = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      for (let id = opened++; id < accounts; id = opened++) {
        await runtime.dispatch({ aggregate: 'account', id: `acc-${id}`, command: 'open', input: { owner: `owner-${id}` } });
      }
    }),
  );
  const openSeconds = (performance.now() - started) / 1_000;
  await runtime.close();

  const reopenStarted = performance.now();
  const reopened = await createRuntime({ app, dataDir, logger: quiet });
  const reopenMs = performance.now() - reopenStarted;
  const coldReads = new Latencies();
  for (let sample = 0; sample < 2_000; sample++) {
    const id = `acc-${Math.floor(Math.random() * accounts)}`;
    const readStarted = performance.now();
    await reopened.state({ aggregate: 'account', id });
    coldReads.record(performance.now() - readStarted);
  }
  const coldDeposits = await closedLoop(
    () => reopened.dispatch({ aggregate: 'account', id: `acc-${Math.floor(Math.random() * accounts)}`, command: 'deposit', input: { amount: 1 } }),
    { inFlight: 64, warmupMs: 0, durationMs: 3_000 },
  );
  await reopened.close();
  console.log(
    JSON.stringify({
      accounts,
      openPerSec: round(accounts / openSeconds, 0),
      peakRssMiB: round(process.resourceUsage().maxRSS / 1024, 1),
      reopenMs: round(reopenMs, 1),
      coldRead: coldReads.summary(),
      coldDeposits: { opsPerSec: round(coldDeposits.opsPerSec, 0), ...coldDeposits.latencies.summary() },
    }),
  );
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
