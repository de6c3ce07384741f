import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { startNatsServer, type NatsServer } from '../support/nats-server.ts';
import { http, startTestNode, type TestNode } from '../support/node.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';

const cleanup = cleanupAfterEach();
const ledgerApp = new URL('../fixtures/ledger-app.ts', import.meta.url).href;
const entries = Array.from({ length: 10 }, (_, index) => ({ id: `book-${index % 3}`, amount: index + 1 }));
let nats: NatsServer;

beforeAll(async () => {
  nats = await startNatsServer();
});

afterAll(async () => {
  await nats.stop();
});

async function member(nodeId: string): Promise<TestNode> {
  const node = await startTestNode({ nodeId, appModule: ledgerApp, nats: { servers: nats.url, prefix: 'catchup' }, cluster: true, partitions: 4, shards: 1, viewWaitMs: 300 });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= node.stop());
  cleanup.push(stop);
  return { ...node, stop };
}

async function placedOn(node: TestNode, projection: string): Promise<void> {
  await waitFor(() => node.node.runtime.cluster?.placementTable().find((row) => row.projection === projection)?.node === node.node.runtime.cluster?.nodeId, { timeoutMs: 20_000, everyMs: 50 });
}

describe('a projection placed on a node with nothing of it yet', () => {
  it('answers reads only once it has caught up with the stream: until then they wait, then 504 SHARDLOG_VIEW_BEHIND', async () => {
    const first = await member('first');
    await placedOn(first, 'slow-totals');
    for (const [index, { id, amount }] of entries.entries()) {
      const answer = await http(`${first.url}/commands/ledger/${id}/enter`, { method: 'POST', json: { amount }, headers: { 'idempotency-key': `entry-${index}` } });
      expect(answer.status).toBe(200);
    }
    const expected = new Map<string, { total: number; entries: number }>();
    for (const { id, amount } of entries) expected.set(id, { total: (expected.get(id)?.total ?? 0) + amount, entries: (expected.get(id)?.entries ?? 0) + 1 });
    const read = async (node: TestNode, id: string) => http(`${node.url}/views/slow-totals/${id}`);
    await waitFor(async () => (await read(first, 'book-0')).status === 200, { timeoutMs: 20_000, everyMs: 50 });
    await first.stop();

    // The next node starts with no view file: the projection folds the stream from its start, held still on the first event.
    const holdDir = makeTempDir();
    cleanup.push(holdDir.remove);
    const hold = join(holdDir.dir, 'hold');
    writeFileSync(hold, '');
    process.env.LEDGER_HOLD_FILE = hold;
    try {
      const second = await member('second');
      await placedOn(second, 'slow-totals');
      const waiting = await read(second, 'book-0');
      expect([waiting.status, (waiting.body as { code?: string }).code, waiting.headers.get('retry-after')]).toEqual([504, 'SHARDLOG_VIEW_BEHIND', '1']);
      expect((waiting.body as { catchingUp?: boolean }).catchingUp).toBe(true);
      rmSync(hold);
      await waitFor(async () => (await read(second, 'book-0')).status === 200, { timeoutMs: 20_000, everyMs: 50 });
      for (const [id, doc] of expected) expect((await read(second, id)).body).toEqual(doc);
    } finally {
      rmSync(hold, { force: true });
      delete process.env.LEDGER_HOLD_FILE;
    }
  }, 120_000);
});
