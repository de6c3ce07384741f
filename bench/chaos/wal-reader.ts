import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../test/support/free-port.ts';
import { makeTempDir } from '../../test/support/temp-dir.ts';
import type { Drill, DrillReport, Invariant } from './drill.ts';
import { errorsAreRetryableProblems, latencyFigures } from './support/answers.ts';
import { DepositLoad, openAccounts } from './support/deposit-load.ts';
import { ledgerInvariants } from './support/ledger-check.ts';
import { pollUntil } from './support/poll.ts';
import { ShardlogProcess } from './support/shardlog-process.ts';

/** The shard log's journal_size_limit: a WAL reset by a checkpoint is truncated to this. */
const journalSizeLimit = 16 * 2 ** 20;
/** Past this the checkpointer warns that a reader holds the WAL (runtime/host/checkpointer.ts). */
const walWarnBytes = 64 * 2 ** 20;
const walWarning = /a reader holds an old snapshot: the WAL of shard 0 is [\d.]+ MiB and cannot be checkpointed/g;

/** The `shardlog_wal_bytes{shard="0"}` gauge, or undefined when /metrics has none. */
async function walGauge(url: string): Promise<number | undefined> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const match = /^shardlog_wal_bytes\{shard="0"\} (\d+)$/m.exec(metrics);
  return match === null ? undefined : Number(match[1]);
}

function walBytes(file: string): number {
  try {
    return statSync(`${file}-wal`).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

/**
 * Another process (a backup, an ad-hoc query) holds a read transaction on a shard log while
 * writes continue: checkpoints cannot pass its snapshot, so the WAL grows. The drill measures
 * how much, checks writes are not slowed into errors, that the node says so, and that the WAL
 * shrinks back once the reader lets go.
 */
export const walReader: Drill = {
  name: 'wal-reader',
  summary: 'a long-running reader holds a snapshot of a shard log while writes continue',
  async run({ quick, log }): Promise<DrillReport> {
    const data = makeTempDir();
    const node = new ShardlogProcess(data.dir, await freePort(), ['--partitions', '8', '--shards', '1']);
    const accounts = Array.from({ length: 16 }, (_, index) => `wal-${index}`);
    const shardFile = join(data.dir, 'shards', '0.db');
    let load: DepositLoad | undefined;
    let reader: Database.Database | undefined;
    try {
      await node.start();
      await openAccounts(node.url, accounts);
      load = new DepositLoad({ url: () => node.url, accounts, concurrency: quick ? 8 : 16, prefix: 'wal' });
      const running = load;
      await pollUntil('acknowledged deposits before the reader', () => running.acknowledged().length >= 200, { timeoutMs: 60_000 });
      const walBefore = walBytes(shardFile);

      reader = new Database(shardFile, { readonly: true });
      reader.exec('BEGIN');
      const heldCount = (reader.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
      const ackedAtHold = load.acknowledged().length;
      log(`reader holds a snapshot of ${heldCount} events; WAL ${mib(walBefore)} MiB`);
      const heldCommands = quick ? 3_000 : 20_000;
      let walPeak = walBefore;
      let gaugePeak = 0;
      await pollUntil('commands committed while the reader holds its snapshot', async () => {
        walPeak = Math.max(walPeak, walBytes(shardFile));
        gaugePeak = Math.max(gaugePeak, (await walGauge(node.url)) ?? 0);
        return running.acknowledged().length >= ackedAtHold + heldCommands;
      }, { timeoutMs: 600_000, everyMs: 200 });
      const committedWhileHeld = load.acknowledged().length - ackedAtHold;
      const gaugeHeld = await walGauge(node.url);
      const fileHeld = walBytes(shardFile);
      const warnings = node.log().match(walWarning) ?? [];
      log(`WAL ${mib(walPeak)} MiB after ${committedWhileHeld} commands under the held snapshot; gauge ${gaugeHeld === undefined ? 'absent' : `${mib(gaugeHeld)} MiB`}; ${warnings.length} warning(s)`);

      reader.exec('COMMIT');
      reader.close();
      reader = undefined;
      const shrankMs = await pollUntil('the WAL back under the journal size limit', () => walBytes(shardFile) <= journalSizeLimit, { timeoutMs: 120_000, everyMs: 200 }).catch(
        () => undefined,
      );
      await load.stop();
      const answered = load.sent.map((deposit) => ({ ...deposit }));
      const { invariants: ledger } = await ledgerInvariants(node.url, accounts, answered);
      const growthPerThousand = committedWhileHeld === 0 ? 0 : (walPeak - walBefore) / (committedWhileHeld / 1_000);

      const invariants: Invariant[] = [
        errorsAreRetryableProblems(answered),
        {
          // The gauge lags the file by up to one checkpoint pass (50 ms of writes): within 10 %.
          name: 'shardlog_wal_bytes follows the WAL while the reader holds it',
          holds: gaugeHeld !== undefined && gaugePeak > walBefore && Math.abs(gaugeHeld - fileHeld) <= fileHeld * 0.1 + 2 ** 20,
          detail: gaugeHeld === undefined ? 'no shardlog_wal_bytes{shard="0"} in /metrics' : `gauge ${mib(gaugeHeld)} MiB (peak ${mib(gaugePeak)}), -wal file ${mib(fileHeld)} MiB`,
        },
        {
          name: `the node warns once when the WAL passes ${mib(walWarnBytes)} MiB`,
          holds: gaugePeak <= walWarnBytes ? warnings.length === 0 : warnings.length === 1,
          detail: `gauge peak ${mib(gaugePeak)} MiB, ${warnings.length} warning(s)${warnings[0] === undefined ? '' : `: "${warnings[0]}"`}`,
        },
        { name: 'the WAL shrinks back once the reader lets go', holds: shrankMs !== undefined, detail: shrankMs === undefined ? `still ${mib(walBytes(shardFile))} MiB after 120 s` : `≤ 16 MiB ${shrankMs} ms after release` },
        ...ledger,
      ];
      return {
        invariants,
        figures: {
          'commands under the held snapshot': committedWhileHeld,
          'WAL before MiB': mib(walBefore),
          'WAL peak MiB': mib(walPeak),
          'shardlog_wal_bytes peak MiB': mib(gaugePeak),
          'WAL growth KiB per 1000 commands': Math.round(growthPerThousand / 1024),
          'WAL after release MiB': mib(walBytes(shardFile)),
          'shrank after release ms': shrankMs ?? 'no',
          answers: load.statusSummary(),
          ...latencyFigures(answered),
        },
      };
    } finally {
      reader?.close();
      await load?.stop();
      await node.stop('SIGKILL');
      data.remove();
    }
  },
};
