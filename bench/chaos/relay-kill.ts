import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { execFileSync } from 'node:child_process';
import { streamNameOf } from '../../runtime/bus/event-message.ts';
import { freePort } from '../../test/support/free-port.ts';
import { startNatsServer } from '../../test/support/nats-server.ts';
import { streamEvents, streamInvariants } from '../../test/support/stream-events.ts';
import { makeTempDir } from '../../test/support/temp-dir.ts';
import { skipped, type Drill, type DrillReport, type Invariant } from './drill.ts';
import { DepositLoad, openAccounts, sendDeposit } from './support/deposit-load.ts';
import { ledgerInvariants } from './support/ledger-check.ts';
import { pollUntil } from './support/poll.ts';
import { busCaughtUp } from './support/readiness.ts';
import { ShardlogProcess } from './support/shardlog-process.ts';

/** The stream's Nats-Msg-Id dedupe window, short on purpose: restarts come after it has passed. */
const duplicateWindowMs = 1_000;

/**
 * The node is killed with SIGKILL under load again and again (JetStream mode), so the relay
 * dies between publishing a batch and recording that it did; each restart comes after the
 * stream's dedupe window has passed, so Nats-Msg-Id no longer protects a republish. The
 * stream must hold every acknowledged event exactly once.
 */
export const relayKill: Drill = {
  name: 'relay-kill',
  summary: 'the node (its relay) killed -9 between publish and recording progress, restarted after the dedupe window',
  async run({ quick, log }): Promise<DrillReport> {
    try {
      execFileSync('nats-server', ['--version'], { stdio: 'pipe' });
    } catch (error) {
      return skipped(`nats-server is not installed (apt-get install nats-server): ${error instanceof Error ? error.message : String(error)}`);
    }
    const nats = await startNatsServer();
    const data = makeTempDir();
    const node = new ShardlogProcess(data.dir, await freePort(), ['--nats', nats.url, '--partitions', '8', '--shards', '2']);
    const accounts = Array.from({ length: 16 }, (_, index) => `relay-${index}`);
    let load: DepositLoad | undefined;
    try {
      const nc = await connect({ servers: nats.url });
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.add({ name: streamNameOf('shardlog'), subjects: ['shardlog.events.*'], storage: 'file', allow_direct: true, duplicate_window: duplicateWindowMs * 1_000_000 });
      } finally {
        await nc.close();
      }
      await node.start();
      await openAccounts(node.url, accounts);
      load = new DepositLoad({ url: () => node.url, accounts, concurrency: quick ? 8 : 16, prefix: 'relay' });
      const running = load;
      const rounds = quick ? 3 : 10;
      const restartMs: number[] = [];
      for (let round = 1; round <= rounds; round++) {
        const acked = load.acknowledged().length;
        await pollUntil('acknowledged deposits before the kill', () => running.acknowledged().length >= acked + 100, { timeoutMs: 120_000 });
        await node.stop('SIGKILL');
        // The dedupe window must pass with the node down: that is the fault.
        await new Promise((resolve) => setTimeout(resolve, duplicateWindowMs * 2));
        const started = Date.now();
        await node.start();
        restartMs.push(Date.now() - started);
        log(`round ${round}: killed after ${load.acknowledged().length} acknowledged, restarted in ${restartMs.at(-1)} ms`);
      }
      await load.stop();
      const answered = load.sent.map((deposit) => ({ ...deposit }));
      const answers = load.statusSummary();
      // What died with the node is retried with its key, as a client would.
      const retried = answered.filter((deposit) => deposit.status !== 200).map((deposit) => ({ ...deposit }));
      for (const deposit of retried) await sendDeposit(node.url, deposit);
      const acknowledged = [...answered.filter((deposit) => deposit.status === 200), ...retried.filter((deposit) => deposit.status === 200)];
      const caughtUpMs = await pollUntil('the relay publishing everything', () => busCaughtUp(node.url), { timeoutMs: 60_000 }).catch(() => undefined);

      const { invariants: ledger } = await ledgerInvariants(node.url, accounts, acknowledged);
      const streamed = await streamEvents(nats.url);
      const inStream = new Map<number, number>();
      for (const event of streamed) {
        const amount = event.type === 'Deposited' ? (event.data as { amount?: number }).amount : undefined;
        if (amount !== undefined) inStream.set(amount, (inStream.get(amount) ?? 0) + 1);
      }
      const streamedOnce = acknowledged.filter((deposit) => inStream.get(deposit.amount) === 1).length;
      const duplicated = [...inStream.values()].filter((count) => count > 1).length;
      const problems = streamInvariants(streamed);
      const invariants: Invariant[] = [
        { name: 'the relay catches up after every restart', holds: caughtUpMs !== undefined, detail: caughtUpMs === undefined ? 'lag not 0 within 60 s' : `lag 0 after ${caughtUpMs} ms` },
        { name: 'every failed command succeeds when retried with its key', holds: retried.every((deposit) => deposit.status === 200), detail: `${retried.filter((deposit) => deposit.status === 200).length} of ${retried.length}` },
        ...ledger,
        { name: 'every acknowledged deposit is in the stream exactly once', holds: streamedOnce === acknowledged.length, detail: `${streamedOnce} of ${acknowledged.length}` },
        { name: 'no deposit is in the stream twice', holds: duplicated === 0, detail: `${duplicated} duplicated` },
        { name: 'the stream is gapless per partition and per aggregate', holds: problems.length === 0, detail: problems.length === 0 ? `${streamed.length} events` : problems.slice(0, 3).join('; ') },
      ];
      return {
        invariants,
        figures: {
          rounds,
          'dedupe window ms': duplicateWindowMs,
          answers,
          'restart to ready ms (each)': restartMs.join(', '),
          'events in stream': streamed.length,
        },
      };
    } finally {
      await load?.stop();
      await node.stop('SIGKILL');
      await nats.stop();
      data.remove();
    }
  },
};
