import { Latencies } from './latency.ts';

export interface LoadResult {
  ops: number;
  failures: number;
  seconds: number;
  opsPerSec: number;
  latencies: Latencies;
}

/**
 * Closed loop: `inFlight` workers each send the next operation as soon as the previous one
 * answers, for `durationMs` after `warmupMs`. Measures the maximum rate at that concurrency.
 */
export async function closedLoop(operation: (index: number) => Promise<unknown>, options: { inFlight: number; warmupMs: number; durationMs: number }): Promise<LoadResult> {
  let next = 0;
  const warmupEnds = performance.now() + options.warmupMs;
  const ends = warmupEnds + options.durationMs;
  const latencies = new Latencies();
  let ops = 0;
  let failures = 0;
  const worker = async () => {
    for (;;) {
      const started = performance.now();
      if (started >= ends) return;
      try {
        await operation(next++);
        if (started >= warmupEnds) {
          latencies.record(performance.now() - started);
          ops += 1;
        }
      } catch {
        if (started >= warmupEnds) failures += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, worker));
  const seconds = options.durationMs / 1_000;
  return { ops, failures, seconds, opsPerSec: ops / seconds, latencies };
}

/**
 * Open loop: operations start at a fixed rate whether or not earlier ones have answered, and
 * each latency counts from the operation's intended start, so queueing is not hidden
 * (no coordinated omission).
 */
export async function openLoop(operation: (index: number) => Promise<unknown>, options: { ratePerSec: number; durationMs: number; maxOutstanding?: number }): Promise<LoadResult & { dropped: number }> {
  const latencies = new Latencies();
  const intervalMs = 1_000 / options.ratePerSec;
  const total = Math.floor((options.durationMs / 1_000) * options.ratePerSec);
  const maxOutstanding = options.maxOutstanding ?? 10_000;
  const start = performance.now();
  let issued = 0;
  let ops = 0;
  let failures = 0;
  let dropped = 0;
  let outstanding = 0;
  const pending: Promise<void>[] = [];
  while (issued < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor((now - start) / intervalMs) + 1);
    for (; issued < due; issued++) {
      const intended = start + issued * intervalMs;
      if (outstanding >= maxOutstanding) {
        dropped += 1;
        continue;
      }
      outstanding += 1;
      pending.push(
        operation(issued).then(
          () => {
            outstanding -= 1;
            ops += 1;
            latencies.record(performance.now() - intended);
          },
          (error: unknown) => {
            outstanding -= 1;
            failures += 1;
            if (process.env.BENCH_SHOW_FAILURES === '1') console.error(error instanceof Error ? error.message : String(error));
          },
        ),
      );
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(pending);
  const seconds = (performance.now() - start) / 1_000;
  return { ops, failures, dropped, seconds, opsPerSec: ops / seconds, latencies };
}
