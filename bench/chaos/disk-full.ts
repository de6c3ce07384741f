import { freePort } from '../../test/support/free-port.ts';
import { skipped, type Drill, type DrillReport, type Invariant } from './drill.ts';
import { DepositLoad, openAccounts, sendDeposit, type Deposit } from './support/deposit-load.ts';
import { ledgerInvariants, viewsConverge } from './support/ledger-check.ts';
import { pollUntil } from './support/poll.ts';
import { ShardlogProcess } from './support/shardlog-process.ts';
import { cannotMount, mountSmallDisk } from './support/tmpfs.ts';

const retryableStatuses = new Set([503, 507]);

/**
 * The data dir is a small tmpfs; under load a filler file takes every free byte. Commands
 * must fail with a retryable problem (503/507 + Retry-After, a SHARDLOG_ code), nothing
 * acknowledged may be missing, and the node must serve again by itself once the filler goes.
 */
export const diskFull: Drill = {
  name: 'disk-full',
  summary: 'the data dir fills up under load, then space returns',
  async run({ quick, log }): Promise<DrillReport> {
    const reason = cannotMount();
    if (reason !== undefined) return skipped(reason);
    const disk = mountSmallDisk(quick ? 16 : 32);
    const node = new ShardlogProcess(disk.dir, await freePort(), ['--partitions', '8', '--shards', '2']);
    const accounts = Array.from({ length: 16 }, (_, index) => `full-${index}`);
    let load: DepositLoad | undefined;
    try {
      await node.start();
      await openAccounts(node.url, accounts);
      load = new DepositLoad({ url: () => node.url, accounts, concurrency: quick ? 8 : 16, prefix: 'full' });
      const running = load;
      await pollUntil('acknowledged deposits before the fault', () => running.acknowledged().length >= (quick ? 100 : 1_000), { timeoutMs: 60_000 });

      log(`${load.acknowledged().length} acknowledged before the fault`);
      const sentBeforeFill = load.sent.length;
      const filled = disk.fill();
      log(`filled the data dir: ${(filled / 2 ** 20).toFixed(1)} MiB filler, ${disk.freeBytes()} bytes left`);
      const failing = (deposit: Deposit) => deposit.status !== undefined && deposit.status !== 200;
      log('waiting for commands to fail');
      const firstFailureMs = await pollUntil('a command failing on the full disk', () => running.sent.slice(sentBeforeFill).some(failing), { timeoutMs: 60_000 }).catch(
        () => undefined,
      );
      // Let the full disk be met by a good number of commands, not just the first batch.
      await pollUntil('failures on the full disk', () => running.sent.slice(sentBeforeFill).filter(failing).length >= (quick ? 30 : 300), { timeoutMs: 30_000 }).catch(
        () => undefined,
      );
      const readyWhileFull = await node.ready();

      const sentBeforeFree = load.sent.length;
      disk.free();
      log(`freed the filler: ${disk.freeBytes()} bytes free`);
      const recoveryMs = await pollUntil('a command succeeding after space returned', () => running.sent.slice(sentBeforeFree).some((deposit) => deposit.status === 200), {
        timeoutMs: 60_000,
      }).catch(() => undefined);
      log(`first success after freeing: ${recoveryMs ?? 'none'} ms`);
      const ackedAtFree = load.acknowledged().length;
      await pollUntil('load flowing again', () => running.acknowledged().length >= ackedAtFree + 100, { timeoutMs: 60_000 }).catch(() => undefined);
      await load.stop();
      const readyAfter = await pollUntil('/readyz after space returned', () => node.ready(), { timeoutMs: 30_000 }).then(
        () => true,
        () => false,
      );

      log(`load stopped: ${load.statusSummary()}`);
      // Copies: retrying below records new answers on the retried deposits.
      const answered = load.sent.map((deposit) => ({ ...deposit }));
      const answers = load.statusSummary();
      const duringFault = answered.slice(sentBeforeFill, sentBeforeFree);
      const failedWhileFull = `${duringFault.filter(failing).length} of ${duringFault.length} failed while full`;
      const errors = answered.filter(failing).map((deposit) => ({ ...deposit }));
      const acknowledged = answered.filter((deposit) => deposit.status === 200);
      const wrongErrors = errors.filter((deposit) => !retryableStatuses.has(deposit.status!) || !deposit.code?.startsWith('SHARDLOG_') || deposit.retryAfter === null);
      const wrongExample = JSON.stringify(wrongErrors[0]);
      const commitFailed = errors.filter((deposit) => deposit.code === 'SHARDLOG_COMMIT_FAILED');
      const failedAfterFree = answered.slice(sentBeforeFree).filter(failing).length;

      const { invariants: ledger, fold } = await ledgerInvariants(node.url, accounts, answered);
      const failedButWritten = commitFailed.filter((deposit) => fold.counts.has(deposit.amount)).length;
      // A failed command is retryable: the same key now commits it, once.
      for (const deposit of errors) await sendDeposit(node.url, deposit);
      const retriedOk = errors.filter((deposit) => deposit.status === 200).length;
      log(`retried ${errors.length} failed deposits with their keys`);
      const views = await viewsConverge(node.url, (await ledgerInvariants(node.url, accounts, errors)).fold, quick ? 30_000 : 60_000);

      // The acknowledged commands must also survive a crash right after the fault.
      await node.stop('SIGKILL');
      await node.start();
      const afterCrash = await ledgerInvariants(node.url, accounts, [...acknowledged, ...errors]);

      const invariants: Invariant[] = [
        { name: 'the full disk is met by failing commands', holds: firstFailureMs !== undefined, detail: failedWhileFull },
        {
          name: 'every failure is 503/507 with Retry-After and a SHARDLOG_ code',
          holds: wrongErrors.length === 0,
          detail: wrongErrors.length === 0 ? `${errors.length} failures, all retryable problems` : `${wrongErrors.length} not: e.g. ${wrongExample}`,
        },
        { name: 'a commit that failed wrote nothing', holds: failedButWritten === 0, detail: `${failedButWritten} of ${commitFailed.length} SHARDLOG_COMMIT_FAILED found in the log` },
        { name: 'the node serves again by itself once space returns', holds: recoveryMs !== undefined && readyAfter, detail: recoveryMs === undefined ? 'no command succeeded within 60 s' : `first success ${recoveryMs} ms after freeing, /readyz ${readyAfter ? 200 : 'not ready'}` },
        { name: 'every failed command succeeds when retried with its key', holds: retriedOk === errors.length, detail: `${retriedOk} of ${errors.length}` },
        ...ledger,
        views,
        ...afterCrash.invariants.map((invariant) => ({ ...invariant, name: `after kill -9 and restart: ${invariant.name}` })),
      ];
      return {
        invariants,
        figures: {
          'disk size MiB': quick ? 16 : 32,
          sent: load.sent.length,
          acknowledged: acknowledged.length,
          answers,
          'first failure after fill ms': firstFailureMs ?? 'none',
          '/readyz while full': readyWhileFull ? 200 : 503,
          'recovery ms (free → first 200)': recoveryMs ?? 'none',
          'failed after space returned (in flight at the time)': failedAfterFree,
          'retried with same key, ok': retriedOk,
        },
      };
    } finally {
      await load?.stop();
      await node.stop('SIGKILL');
      disk.unmount();
    }
  },
};
