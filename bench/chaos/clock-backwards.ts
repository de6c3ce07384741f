import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/support/free-port.ts';
import { makeTempDir } from '../../test/support/temp-dir.ts';
import { skipped, type Drill, type DrillReport, type Invariant } from './drill.ts';
import { errorsAreRetryableProblems, latencyFigures } from './support/answers.ts';
import { DepositLoad, openAccounts, sendDeposit, type Deposit } from './support/deposit-load.ts';
import { ledgerInvariants } from './support/ledger-check.ts';
import { pollUntil } from './support/poll.ts';
import { buildPreloadShim } from './support/preload-shim.ts';
import { ShardlogProcess } from './support/shardlog-process.ts';
import { SseHeartbeats } from './support/sse-heartbeats.ts';

const tunedNode = fileURLToPath(new URL('./support/tuned-node.ts', import.meta.url));
const stepMs = -60 * 60_000;
const heartbeatMs = 250;

interface TimedEvent {
  version: number;
  type: string;
  recordedAt: string;
  data: { amount?: number };
}

/** How far the node's wall clock is from ours, read from the Date header of its answers (1 s resolution). */
async function nodeClockOffsetMs(url: string): Promise<number> {
  const response = await fetch(`${url}/readyz`);
  await response.text();
  return Date.parse(response.headers.get('date') ?? '') - Date.now();
}

async function eventsOf(url: string, account: string): Promise<TimedEvent[]> {
  const events: TimedEvent[] = [];
  for (let after = 0; ; ) {
    const response = await fetch(`${url}/aggregates/account/${account}/events?after=${after}&limit=1000`);
    if (response.status !== 200) throw new Error(`reading ${account}'s events answered ${response.status}: ${await response.text()}`);
    const page = ((await response.json()) as { events: TimedEvent[] }).events;
    events.push(...page);
    if (page.length < 1000) return events;
    after = page.at(-1)!.version;
  }
}

const balanceOf = (events: readonly TimedEvent[]) => events.reduce((sum, event) => sum + (event.type === 'Deposited' ? (event.data.amount ?? 0) : 0), 0);

/**
 * What `?at=T` answers for times around each backwards step of `recordedAt`, against two
 * readings of "the state at T": the prefix of the history cut at the first event recorded
 * after T, and the fold of every event recorded at or before T.
 */
async function readsAtTime(url: string, account: string, events: readonly TimedEvent[]) {
  const times = new Set<number>();
  const recorded = events.map((event) => Date.parse(event.recordedAt));
  for (let index = 1; index < recorded.length; index++) {
    if (recorded[index]! < recorded[index - 1]!) {
      // Around a step back: the times of the events on both sides, and one between.
      for (const time of [recorded[index]!, recorded[index]! + 1, recorded[index - 1]! - 1, recorded[index - 1]!]) times.add(time);
    }
  }
  for (let index = 0; index < recorded.length; index += Math.max(1, Math.floor(recorded.length / 10))) times.add(recorded[index]!);
  let prefixMatches = 0;
  let setMatches = 0;
  let inconsistent = 0;
  let example = '';
  for (const time of times) {
    const response = await fetch(`${url}/aggregates/account/${account}?at=${new Date(time).toISOString()}`);
    const body = (await response.json()) as { version?: number; state?: { balance: number }; code?: string };
    const cut = recorded.findIndex((at) => at > time);
    const prefix = events.slice(0, cut === -1 ? events.length : cut);
    const set = events.filter((_, index) => recorded[index]! <= time);
    const version = response.status === 404 ? 0 : (body.version ?? -1);
    const balance = response.status === 404 ? 0 : (body.state?.balance ?? Number.NaN);
    const asPrefix = version === prefix.length && balance === balanceOf(prefix);
    if (asPrefix) prefixMatches += 1;
    if (version === set.length && balance === balanceOf(set)) setMatches += 1;
    // Whatever it answers must be a state the aggregate was in: some prefix of its history.
    if (!(version >= 0 && version <= events.length && balance === balanceOf(events.slice(0, version)))) inconsistent += 1;
    if (!asPrefix && example === '') example = `at ${new Date(time).toISOString()}: version ${version}, prefix ${prefix.length}, events recorded ≤ T ${set.length}`;
  }
  return { reads: times.size, prefixMatches, setMatches, inconsistent, example };
}

/**
 * The node's wall clock is stepped back an hour mid-load (an LD_PRELOAD shim offsets
 * CLOCK_REALTIME of the node process only; monotonic clocks go on, as with a real step), then
 * the node restarts still an hour behind. Commands keep committing exactly once, idempotency
 * records from before the step still answer their keys, `?at=` reads still return a state the
 * aggregate was in, and the SSE heartbeat timer keeps beating. It prints what happens to
 * `recordedAt` across the step and the restart.
 */
export const clockBackwards: Drill = {
  name: 'clock-backwards',
  summary: 'the wall clock of a node steps back an hour mid-load, then the node restarts',
  async run({ quick, log }): Promise<DrillReport> {
    const shim = buildPreloadShim('clock-offset');
    if ('skipped' in shim) return skipped(shim.skipped);
    const data = makeTempDir();
    const offsetFile = join(data.dir, 'clock-offset-ms');
    writeFileSync(offsetFile, '0');
    const env = { LD_PRELOAD: shim.library, CLOCK_OFFSET_FILE: offsetFile };
    const node = new ShardlogProcess(join(data.dir, 'node'), await freePort(), ['--shards', '2', '--heartbeat-ms', String(heartbeatMs)], tunedNode, env);
    const accounts = Array.from({ length: 8 }, (_, index) => `clock-${index}`);
    const phase = quick ? 200 : 1_000;
    let load: DepositLoad | undefined;
    let heartbeats: SseHeartbeats | undefined;
    try {
      await node.start();
      const shimLoaded = node.log().includes('clock-offset: loaded');
      await openAccounts(node.url, accounts);
      heartbeats = new SseHeartbeats(node.url);
      load = new DepositLoad({ url: () => node.url, accounts, concurrency: 8, prefix: 'clock' });
      const running = load;
      await pollUntil('acknowledged deposits before the step', () => running.acknowledged().length >= phase, { timeoutMs: 300_000 });

      writeFileSync(offsetFile, String(stepMs));
      const stepAt = performance.now();
      const sentBeforeStep = load.sent.length;
      await pollUntil('the node’s clock an hour behind', async () => (await nodeClockOffsetMs(node.url)) < stepMs + 60_000, { timeoutMs: 30_000 });
      log(`stepped the node's clock back ${-stepMs / 60_000} min after ${load.acknowledged().length} deposits (shim ${shimLoaded ? 'loaded' : 'NOT loaded'})`);
      const ackedAtStep = load.acknowledged().length;
      await pollUntil('acknowledged deposits after the step', () => running.acknowledged().length >= ackedAtStep + phase, { timeoutMs: 300_000 });
      const beatsAfterStep = heartbeats.count(stepAt);
      await heartbeats.stop();

      await node.stop('SIGTERM');
      await node.start();
      const offsetAfterRestart = await nodeClockOffsetMs(node.url);
      const ackedAtRestart = load.acknowledged().length;
      log(`restarted still ${Math.round(-offsetAfterRestart / 60_000)} min behind`);
      heartbeats = new SseHeartbeats(node.url);
      const restartedAt = performance.now();
      await pollUntil('acknowledged deposits after the restart', () => running.acknowledged().length >= ackedAtRestart + phase, { timeoutMs: 300_000 });
      await pollUntil('an SSE heartbeat after the restart', () => heartbeats!.count(restartedAt) > 0, { timeoutMs: 30_000 }).catch(() => undefined);
      const beatsAfterRestart = heartbeats.count(restartedAt);
      await heartbeats.stop();
      await load.stop();

      // Keys acknowledged before the step, sent again: their records must still be there.
      const replays: Deposit[] = load.sent
        .slice(0, sentBeforeStep)
        .filter((deposit) => deposit.status === 200)
        .slice(0, 50)
        .map((deposit) => ({ key: deposit.key, account: deposit.account, amount: deposit.amount }));
      for (const replay of replays) await sendDeposit(node.url, replay);
      const replayedOk = replays.filter((replay) => replay.status === 200).length;

      const answered = load.sent.map((deposit) => ({ ...deposit }));
      const { invariants: ledger } = await ledgerInvariants(node.url, accounts, answered);

      let backwardSteps = 0;
      let largestStepBackMs = 0;
      let plateauEvents = 0;
      const atReads = { reads: 0, prefixMatches: 0, setMatches: 0, inconsistent: 0, example: '' };
      for (const account of accounts) {
        const events = await eventsOf(node.url, account);
        const recorded = events.map((event) => Date.parse(event.recordedAt));
        for (let index = 1; index < recorded.length; index++) {
          if (recorded[index]! < recorded[index - 1]!) {
            backwardSteps += 1;
            largestStepBackMs = Math.max(largestStepBackMs, recorded[index - 1]! - recorded[index]!);
          } else if (recorded[index] === recorded[index - 1]) plateauEvents += 1;
        }
        const reads = await readsAtTime(node.url, account, events);
        atReads.reads += reads.reads;
        atReads.prefixMatches += reads.prefixMatches;
        atReads.setMatches += reads.setMatches;
        atReads.inconsistent += reads.inconsistent;
        if (atReads.example === '') atReads.example = reads.example;
      }
      log(`recordedAt went backwards ${backwardSteps} time(s) in the accounts' histories (largest ${Math.round(largestStepBackMs / 1_000)} s); ${plateauEvents} events share the previous event's recordedAt`);
      log(`?at= reads: ${atReads.reads}; equal to the prefix cut at the first event recorded after T: ${atReads.prefixMatches}; equal to the fold of every event recorded ≤ T: ${atReads.setMatches}${atReads.example === '' ? '' : `; e.g. ${atReads.example}`}`);

      const invariants: Invariant[] = [
        { name: 'the node’s clock was stepped back', holds: shimLoaded && offsetAfterRestart < stepMs + 60_000, detail: `node clock ${Math.round(offsetAfterRestart / 1_000)} s from the real one after the restart` },
        errorsAreRetryableProblems(answered),
        ...ledger,
        {
          name: 'idempotency records from before the step still answer their keys',
          holds: replays.length > 0 && replayedOk === replays.length,
          detail: `${replayedOk} of ${replays.length} keys from before the step answered 200 again (no second event: see the ledger)`,
        },
        {
          name: 'recordedAt never goes backwards in an aggregate’s history (it waits for the clock instead)',
          holds: backwardSteps === 0,
          detail: `${backwardSteps} step(s) back${backwardSteps === 0 ? '' : `, the largest ${Math.round(largestStepBackMs / 1_000)} s`}; ${plateauEvents} events share the previous event's recordedAt`,
        },
        {
          name: '?at= reads return a state the aggregate was in (a prefix of its history)',
          holds: atReads.reads > 0 && atReads.inconsistent === 0,
          detail: `${atReads.reads - atReads.inconsistent} of ${atReads.reads} reads; ${atReads.prefixMatches} cut at the first event recorded after T`,
        },
        {
          name: 'the SSE heartbeat keeps beating after the step and after the restart',
          holds: beatsAfterStep > 0 && beatsAfterRestart > 0,
          detail: `${beatsAfterStep} heartbeats after the step, ${beatsAfterRestart} after the restart (every ${heartbeatMs} ms)`,
        },
      ];
      return {
        invariants,
        figures: {
          'clock step min': stepMs / 60_000,
          'recordedAt steps back': backwardSteps,
          'largest recordedAt step back s': Math.round(largestStepBackMs / 1_000),
          'events sharing the previous recordedAt': plateauEvents,
          '?at= reads': atReads.reads,
          '?at= reads equal to the prefix cut at T': atReads.prefixMatches,
          '?at= reads equal to the events recorded ≤ T': atReads.setMatches,
          answers: load.statusSummary(),
          ...latencyFigures(answered),
        },
      };
    } finally {
      await heartbeats?.stop();
      await load?.stop();
      await node.stop('SIGKILL');
      data.remove();
    }
  },
};
