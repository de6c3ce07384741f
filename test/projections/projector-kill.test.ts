import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createRuntime } from '../../runtime/index.ts';
import ledgerApp from '../fixtures/ledger-app.ts';
import { allEvents, caughtUp, viewDocuments } from '../support/projections.ts';
import { startNatsServer } from '../support/nats-server.ts';
import { makeTempDir, silentLogger } from '../support/temp-dir.ts';

const child = fileURLToPath(new URL('../fixtures/ledger-load-child.ts', import.meta.url));
let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

/** Runs the ledger load in a child whose projector is slow (so it is mid-batch), and SIGKILLs it after `killAfter` acks. */
function runUntilKilled(dataDir: string, killAfter: number, natsUrl?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const load = spawn(process.execPath, ['--import', 'tsx', child, dataDir, ...(natsUrl === undefined ? [] : [natsUrl])], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LEDGER_SLOW_MS: '0.2' } });
    let acks = 0;
    let stderr = '';
    const timer = setTimeout(() => {
      load.kill('SIGKILL');
      reject(new Error(`load child acknowledged only ${acks} entries in time; stderr: ${stderr}`));
    }, 40_000);
    load.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    load.stdout.on('data', (chunk: Buffer) => {
      acks += chunk.toString().split('\n').filter((line) => line.startsWith('ack ')).length;
      if (acks >= killAfter && !load.killed) load.kill('SIGKILL');
    });
    load.on('exit', (_code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve(acks);
      else reject(new Error(`load child exited on its own; stderr: ${stderr}`));
    });
  });
}

async function killTwiceAndCheck(natsUrl?: string): Promise<void> {
  const temp = makeTempDir();
  cleanup.push(temp.remove);
  for (const killAfter of [1_500, 3_000]) {
    const acks = await runUntilKilled(temp.dir, killAfter, natsUrl);
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
