import { streamEvents, streamInvariants } from '../../test/support/stream-events.ts';
import { freePort } from '../../test/support/free-port.ts';
import { startNatsServer } from '../../test/support/nats-server.ts';
import { makeTempDir } from '../../test/support/temp-dir.ts';
import { skipped, type Drill, type DrillReport, type Invariant } from './drill.ts';
import { errorsAreRetryableProblems, latencyFigures } from './support/answers.ts';
import { DepositLoad, openAccounts, sendDeposit } from './support/deposit-load.ts';
import { ledgerInvariants, viewsConverge } from './support/ledger-check.ts';
import { pollUntil } from './support/poll.ts';
import { busCaughtUp } from './support/readiness.ts';
import { ShardlogProcess } from './support/shardlog-process.ts';
import { execFileSync } from 'node:child_process';

type Mode = 'jetstream' | 'cluster';

/**
 * nats-server is killed with SIGKILL under load and started again on the same store. No
 * acknowledged event may be lost (in the shard log and in the stream), publishing must
 * resume, and the views must converge to the fold of the log.
 */
export const natsKill: Drill = {
  name: 'nats-kill',
  summary: 'nats-server killed -9 mid-load and restarted, in JetStream mode and in cluster mode',
  async run(options): Promise<DrillReport> {
    try {
      execFileSync('nats-server', ['--version'], { stdio: 'pipe' });
    } catch (error) {
      return skipped(`nats-server is not installed (apt-get install nats-server): ${error instanceof Error ? error.message : String(error)}`);
    }
    const invariants: Invariant[] = [];
    const figures: Record<string, number | string> = {};
    // The quick set drills cluster mode only: there commands wait for JetStream, the harder case.
    for (const mode of options.quick ? (['cluster'] as const) : (['jetstream', 'cluster'] as const)) {
      const report = await drillMode(mode, options);
      invariants.push(...report.invariants.map((invariant) => ({ ...invariant, name: `${mode}: ${invariant.name}` })));
      for (const [figure, value] of Object.entries(report.figures)) figures[`${mode}: ${figure}`] = value;
    }
    return { invariants, figures };
  },
};

async function drillMode(mode: Mode, { quick, log }: { quick: boolean; log: (line: string) => void }): Promise<DrillReport> {
  const nats = await startNatsServer();
  const data = makeTempDir();
  const node = new ShardlogProcess(data.dir, await freePort(), ['--nats', nats.url, '--partitions', '8', '--shards', '2', ...(mode === 'cluster' ? ['--node-id', 'chaos-1'] : [])]);
  const accounts = Array.from({ length: 16 }, (_, index) => `nats-${index}`);
  let load: DepositLoad | undefined;
  try {
    await node.start();
    await openAccounts(node.url, accounts);
    load = new DepositLoad({ url: () => node.url, accounts, concurrency: quick ? 8 : 16, prefix: `nats-${mode}` });
    const running = load;
    await pollUntil('acknowledged deposits before the fault', () => running.acknowledged().length >= (quick ? 100 : 1_000), { timeoutMs: 60_000 });
    log(`${mode}: ${load.acknowledged().length} acknowledged; killing nats-server with SIGKILL`);

    await nats.kill();
    const sentAtKill = load.sent.length;
    // Hold the outage until a good number of commands have met it (in a cluster each waits
    // for JetStream's confirmation, 10 s by default, so fewer are answered there).
    const outageAnswers = mode === 'cluster' ? (quick ? 16 : 64) : quick ? 50 : 300;
    const outageMs = await pollUntil('commands answered during the outage', () => running.sent.slice(sentAtKill).filter((deposit) => deposit.latencyMs !== undefined).length >= outageAnswers, {
      timeoutMs: 90_000,
    });
    const outage = load.sent.slice(sentAtKill).filter((deposit) => deposit.latencyMs !== undefined);
    const okDuringOutage = outage.filter((deposit) => deposit.status === 200).length;
    log(`${mode}: ${okDuringOutage} of ${outage.length} answered 200 during the outage; restarting nats-server`);

    await nats.start();
    const sentAtRestart = load.sent.length;
    const recoveryMs = await pollUntil('a command succeeding after nats-server returned', () => running.sent.slice(sentAtRestart).some((deposit) => deposit.status === 200), {
      timeoutMs: 60_000,
    }).catch(() => undefined);
    const ackedAtRestart = load.acknowledged().length;
    await pollUntil('load flowing again', () => running.acknowledged().length >= ackedAtRestart + 100, { timeoutMs: 60_000 }).catch(() => undefined);
    await load.stop();
    const answered = load.sent.map((deposit) => ({ ...deposit }));
    const answers = load.statusSummary();
    log(`${mode}: load stopped: ${answers}`);

    const publishResumedMs = await pollUntil('the relay publishing everything', () => busCaughtUp(node.url), { timeoutMs: 60_000 }).catch(() => undefined);
    // Commands that failed are retried with their keys, as a client would: then every command sent is in.
    const retried = answered.filter((deposit) => deposit.status !== 200).map((deposit) => ({ ...deposit }));
    for (const deposit of retried) await sendDeposit(node.url, deposit);
    const retriedOk = retried.filter((deposit) => deposit.status === 200).length;
    await pollUntil('the relay publishing the retried commands', () => busCaughtUp(node.url), { timeoutMs: 60_000 }).catch(() => undefined);

    const acknowledged = [...answered.filter((deposit) => deposit.status === 200), ...retried.filter((deposit) => deposit.status === 200)];
    const { invariants: ledger, fold } = await ledgerInvariants(node.url, accounts, acknowledged);
    const streamed = await streamEvents(nats.url);
    const inStream = new Map<number, number>();
    for (const event of streamed) {
      const amount = event.type === 'Deposited' ? (event.data as { amount?: number }).amount : undefined;
      if (amount !== undefined) inStream.set(amount, (inStream.get(amount) ?? 0) + 1);
    }
    const streamedOnce = acknowledged.filter((deposit) => inStream.get(deposit.amount) === 1).length;
    const streamProblems = streamInvariants(streamed);
    const views = await viewsConverge(node.url, fold, quick ? 30_000 : 60_000);

    const invariants: Invariant[] = [
      errorsAreRetryableProblems(answered),
      { name: 'the node serves again once nats-server is back', holds: recoveryMs !== undefined, detail: recoveryMs === undefined ? 'no command succeeded within 60 s' : `first 200 ${recoveryMs} ms after restart` },
      { name: 'publishing resumes (bus connected, lag 0)', holds: publishResumedMs !== undefined, detail: publishResumedMs === undefined ? 'lag not 0 within 60 s' : `caught up ${publishResumedMs} ms after the load stopped` },
      { name: 'every failed command succeeds when retried with its key', holds: retriedOk === retried.length, detail: `${retriedOk} of ${retried.length}` },
      ...ledger,
      { name: 'every acknowledged deposit is in the stream exactly once', holds: streamedOnce === acknowledged.length, detail: `${streamedOnce} of ${acknowledged.length}` },
      { name: 'the stream is gapless per partition and per aggregate', holds: streamProblems.length === 0, detail: streamProblems.length === 0 ? `${streamed.length} events` : streamProblems.slice(0, 3).join('; ') },
      views,
    ];
    return {
      invariants,
      figures: {
        sent: answered.length,
        answers,
        'outage held ms': outageMs,
        'answered during outage (200 / all)': `${okDuringOutage} / ${outage.length}`,
        'slowest answer during outage ms': Math.round(Math.max(0, ...outage.map((deposit) => deposit.latencyMs ?? 0))),
        'recovery ms (restart → first 200)': recoveryMs ?? 'none',
        'publish caught up ms': publishResumedMs ?? 'none',
        ...latencyFigures(answered),
        'events in stream': streamed.length,
      },
    };
  } finally {
    await load?.stop();
    await node.stop('SIGKILL');
    await nats.stop();
    data.remove();
  }
}
