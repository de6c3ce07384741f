import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/support/free-port.ts';
import { makeTempDir } from '../../test/support/temp-dir.ts';
import { skipped, type Drill, type DrillReport, type Invariant } from './drill.ts';
import { errorsAreRetryableProblems, latencyFigures } from './support/answers.ts';
import { DepositLoad, openAccounts, type Deposit } from './support/deposit-load.ts';
import { ledgerInvariants } from './support/ledger-check.ts';
import { pollUntil } from './support/poll.ts';
import { buildPreloadShim } from './support/preload-shim.ts';
import { readiness } from './support/readiness.ts';
import { ShardlogProcess } from './support/shardlog-process.ts';

const tunedNode = fileURLToPath(new URL('./support/tuned-node.ts', import.meta.url));
/** Commands a shard may hold waiting: small, so the load overruns it once fsync stalls. */
const queueBound = 16;

/** Runs a deposit load until `acknowledged` are answered 200, sampling the deepest shard queue meanwhile. */
async function loadPhase(node: ShardlogProcess, load: DepositLoad, acknowledged: number): Promise<{ answered: Deposit[]; maxQueued: number }> {
  let maxQueued = 0;
  await pollUntil(
    `${acknowledged} acknowledged deposits`,
    async () => {
      const ready = await readiness(node.url);
      for (const shard of ready?.shards ?? []) maxQueued = Math.max(maxQueued, shard.queued);
      return load.acknowledged().length >= acknowledged;
    },
    { timeoutMs: 300_000, everyMs: 100 },
  );
  await load.stop();
  return { answered: load.sent.map((deposit) => ({ ...deposit })), maxQueued };
}

const overloaded = (deposit: Deposit) => deposit.status === 503 || deposit.status === 429;

/**
 * The disk stalls every fsync (an LD_PRELOAD shim sleeps before each fsync/fdatasync of the
 * node process, as a saturated or failing disk does). The same bounded load runs before and
 * under the stall: latency degrades, the shard queue stays within its bound and the excess is
 * refused with 503/429 and Retry-After, and every acknowledged deposit is in the log once.
 */
export const slowDisk: Drill = {
  name: 'slow-disk',
  summary: 'every fsync of the node stalls 100 ms+ under bounded HTTP load',
  async run({ quick, log }): Promise<DrillReport> {
    const shim = buildPreloadShim('slow-fsync');
    if ('skipped' in shim) return skipped(shim.skipped);
    const stallMs = quick ? 100 : 150;
    const data = makeTempDir();
    const node = new ShardlogProcess(data.dir, await freePort(), ['--shards', '1', '--queue', String(queueBound)], tunedNode);
    const accounts = Array.from({ length: 16 }, (_, index) => `slow-${index}`);
    const concurrency = 48;
    let load: DepositLoad | undefined;
    try {
      await node.start();
      await openAccounts(node.url, accounts);
      load = new DepositLoad({ url: () => node.url, accounts, concurrency, prefix: 'fast' });
      const normal = await loadPhase(node, load, quick ? 300 : 1_000);
      log(`normal disk: ${load.statusSummary()}`);

      await node.stop('SIGTERM');
      node.setEnv({ LD_PRELOAD: shim.library, SLOW_FSYNC_MS: String(stallMs) });
      await node.start();
      const shimLoaded = node.log().includes('slow-fsync: loaded');
      log(`restarted with every fsync stalled ${stallMs} ms (shim ${shimLoaded ? 'loaded' : 'NOT loaded'})`);
      load = new DepositLoad({ url: () => node.url, accounts, concurrency, prefix: 'stalled', firstAmount: 10_000_000 });
      const stalled = await loadPhase(node, load, quick ? 100 : 300);
      log(`stalled disk: ${load.statusSummary()}`);

      const answered = [...normal.answered, ...stalled.answered];
      const { invariants: ledger } = await ledgerInvariants(node.url, accounts, answered);
      await node.stop('SIGTERM');
      const delayedCalls = /slow-fsync: (\d+) calls delayed/.exec(node.log())?.[1];

      const normalLatency = latencyFigures(normal.answered.filter((deposit) => deposit.status === 200));
      const stalledLatency = latencyFigures(stalled.answered.filter((deposit) => deposit.status === 200));
      const refused = stalled.answered.filter(overloaded);
      const invariants: Invariant[] = [
        { name: 'the shim stalls the node’s fsyncs', holds: shimLoaded && Number(delayedCalls ?? 0) > 0, detail: `${delayedCalls ?? 'no count of'} fsync/fdatasync calls delayed ${stallMs} ms` },
        {
          name: `commit latency degrades by at least the stall`,
          holds: stalledLatency['p50 ms']! >= stallMs && stalledLatency['p50 ms']! > normalLatency['p50 ms']!,
          detail: `acknowledged p50 ${normalLatency['p50 ms']} → ${stalledLatency['p50 ms']} ms, p99 ${normalLatency['p99 ms']} → ${stalledLatency['p99 ms']} ms`,
        },
        {
          name: `no shard queues more than its bound (${queueBound})`,
          holds: stalled.maxQueued <= queueBound,
          detail: `deepest queue seen ${stalled.maxQueued} under the stall, ${normal.maxQueued} before`,
        },
        {
          name: 'the excess load is refused with 503/429 and Retry-After, not queued',
          holds: refused.length > 0 && refused.every((deposit) => deposit.retryAfter !== null && deposit.retryAfter !== undefined),
          detail: `${refused.length} of ${stalled.answered.length} refused (${stalled.answered.filter((deposit) => deposit.status === 429).length} as 429), Retry-After on ${refused.filter((deposit) => deposit.retryAfter !== null && deposit.retryAfter !== undefined).length}`,
        },
        errorsAreRetryableProblems(answered, new Set([503, 429])),
        ...ledger,
      ];
      return {
        invariants,
        figures: {
          'fsync stall ms': stallMs,
          'queue bound': queueBound,
          'requests in flight': concurrency,
          'normal p50 ms': normalLatency['p50 ms']!,
          'normal p99 ms': normalLatency['p99 ms']!,
          'stalled p50 ms': stalledLatency['p50 ms']!,
          'stalled p99 ms': stalledLatency['p99 ms']!,
          'stalled max ms': stalledLatency['max ms']!,
          'normal answers': normal.answered.length,
          'stalled answers': stalled.answered.length,
          'stalled refused 503/429': refused.length,
          'fsync calls delayed': delayedCalls ?? 'unknown',
        },
      };
    } finally {
      await load?.stop();
      await node.stop('SIGKILL');
      data.remove();
    }
  },
};
