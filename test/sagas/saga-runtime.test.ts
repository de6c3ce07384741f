import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import app from '../../actors/app.ts';
import { createRuntime, type Runtime } from '../../runtime/index.ts';
import failureApp from '../fixtures/saga-failure-app.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { startNatsServer } from '../support/nats-server.ts';
import requireNatsServer from '../support/require-nats-server.ts';
import { sagaDone } from '../support/sagas.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';

requireNatsServer();
const cleanup = cleanupAfterEach();

async function placeAndFinish(runtime: Runtime<typeof app>, orders: number) {
  await runtime.dispatch({ aggregate: 'inventory', id: 'tea', command: 'restock', input: { quantity: orders } });
  const ids = Array.from({ length: orders }, (_, index) => `o-${index}`);
  await Promise.all(ids.map((id) => runtime.dispatch({ aggregate: 'order', id, command: 'place', input: { customerId: 'c', items: [{ sku: 'tea', quantity: 1, unitPrice: 1 }] } })));
  for (const id of ids) expect((await sagaDone(runtime, 'order-fulfilment', id)).status).toBe('completed');
  expect((await runtime.state({ aggregate: 'inventory', id: 'tea' })).state).toMatchObject({ available: 0, reserved: orders });
}

describe('sagas on the JetStream bus', () => {
  it('runs the order flow on one node publishing to JetStream', async () => {
    const nats = await startNatsServer();
    cleanup.push(nats.stop);
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const runtime = await createRuntime({ app, dataDir: temp.dir, partitions: 8, shards: 2, logger: silentLogger, nats: { servers: nats.url } });
    cleanup.push(() => runtime.close());
    await placeAndFinish(runtime, 12);
  });

  it('runs the order flow across a two-node cluster, each instance where its partition is served', async () => {
    const nats = await startNatsServer();
    cleanup.push(nats.stop);
    const nodes: Runtime<typeof app>[] = [];
    for (const nodeId of ['a', 'b']) {
      const temp = makeTempDir();
      cleanup.push(temp.remove);
      const runtime = await createRuntime({ app, dataDir: temp.dir, partitions: 8, shards: 2, logger: silentLogger, nats: { servers: nats.url }, cluster: { nodeId } });
      cleanup.push(() => runtime.close());
      nodes.push(runtime);
    }
    await waitFor(() => nodes.every((node) => node.cluster!.status().owned > 0), { timeoutMs: 20_000 });
    await placeAndFinish(nodes[0]!, 12);
    const listed = [...(await nodes[0]!.sagas.list()), ...(await nodes[1]!.sagas.list())];
    expect(listed.filter((item) => item.status === 'completed')).toHaveLength(12);
  });
});

describe('a saga handler that keeps throwing', () => {
  it('parks its input, and dlq retry runs it again once the code works', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const flag = join(temp.dir, 'broken');
    writeFileSync(flag, '');
    process.env.SAGA_FAIL_FILE = flag;
    cleanup.push(() => void delete process.env.SAGA_FAIL_FILE);
    const runtime = await createRuntime({ app: failureApp, dataDir: join(temp.dir, 'data'), partitions: 4, shards: 1, logger: silentLogger });
    cleanup.push(() => runtime.close());
    await runtime.dispatch({ aggregate: 'ticket', id: 't-1', command: 'open', input: {} });
    await waitFor(async () => (await runtime.sagas.deadLetters('closer')).length === 1);
    const [letter] = await runtime.sagas.deadLetters('closer');
    expect(letter).toMatchObject({ correlationId: 't-1', status: 'running', error: expect.stringContaining('broken') as string });
    await expect(runtime.sagas.retry('closer', 't-1')).rejects.toMatchObject({ code: 'SHARDLOG_DLQ_CONFLICT' });
    rmSync(flag);
    await runtime.sagas.retry('closer', 't-1');
    expect((await sagaDone(runtime, 'closer', 't-1')).status).toBe('completed');
    expect((await runtime.state({ aggregate: 'ticket', id: 't-1' })).state).toEqual({ status: 'closed' });
    expect(await runtime.sagas.deadLetters('closer')).toEqual([]);
    await expect(runtime.sagas.skip('closer', 't-1')).rejects.toMatchObject({ code: 'SHARDLOG_DLQ_CONFLICT' });
  });
});
