import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createRuntime } from '../../runtime/index.ts';
import ledgerApp from '../fixtures/ledger-app.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { startNatsServer } from '../support/nats-server.ts';
import { allEvents, caughtUp, viewDocuments } from '../support/projections.ts';
import { runUntilKilled } from '../support/run-until-killed.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';

const child = fileURLToPath(new URL('../fixtures/ledger-load-child.ts', import.meta.url));
const cleanup = cleanupAfterEach();

/** Runs the ledger load in a child whose projector is slow (so it is mid-batch), and SIGKILLs it after `killAfter` acks. */
async function runLedgerUntilKilled(dataDir: string, killAfter: number, natsUrl?: string): Promise<number> {
  const args = natsUrl === undefined ? [dataDir] : [dataDir, natsUrl];
  return (await runUntilKilled(child, args, killAfter, { timeoutMs: 40_000, env: { ...process.env, LEDGER_SLOW_MS: '0.2' } })).length;
}

async function killTwiceAndCheck(natsUrl?: string): Promise<void> {
  const temp = makeTempDir();
  cleanup.push(temp.remove);
  for (const killAfter of [1_500, 3_000]) {
    const acks = await runLedgerUntilKilled(temp.dir, killAfter, natsUrl);
    expect(acks).toBeGreaterThanOrEqual(killAfter);
    const runtime = await createRuntime({ app: ledgerApp, dataDir: temp.dir, logger: silentLogger, nats: natsUrl === undefined ? undefined : { servers: natsUrl } });
    try {
      await caughtUp(runtime, 'slow-totals', 60_000);
      const expected = new Map<string, { total: number; entries: number }>();
      for (const event of await allEvents(runtime)) {
        const doc = expected.get(event.id) ?? { total: 0, entries: 0 };
        expected.set(event.id, { total: doc.total + (event.data as { amount: number }).amount, entries: doc.entries + 1 });
      }
      expect(viewDocuments(temp.dir, 'slow-totals')).toEqual(expected);
    } finally {
      await runtime.close();
    }
  }
}

describe('a process killed with its projector mid-batch', () => {
  it('resumes from its checkpoints and counts nothing twice (embedded bus)', async () => {
    await killTwiceAndCheck();
  });

  it('resumes from its checkpoints and counts nothing twice (JetStream bus)', async () => {
    const nats = await startNatsServer();
    cleanup.push(nats.stop);
    await killTwiceAndCheck(nats.url);
  });
});
