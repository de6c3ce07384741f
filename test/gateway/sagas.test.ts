import { describe, expect, it } from 'vitest';
import { runCli } from '../../cli/program.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { http, startTestNode } from '../support/node.ts';
import { sagaDone } from '../support/sagas.ts';

const cleanup = cleanupAfterEach();

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { out: (text) => (stdout += text), err: (text) => (stderr += text) });
  return { code, stdout, stderr };
}

describe('sagas over HTTP and the CLI', () => {
  it('shows an instance, lists instances, counts them in /metrics, and refuses what does not exist', async () => {
    const test = await startTestNode();
    cleanup.push(test.stop);
    const { url } = test;
    expect((await http(`${url}/commands/inventory/tea/restock`, { method: 'POST', json: { quantity: 5 } })).status).toBe(200);
    expect((await http(`${url}/commands/order/o-1/place`, { method: 'POST', json: { customerId: 'c-1', items: [{ sku: 'tea', quantity: 2, unitPrice: 3 }] } })).status).toBe(200);
    expect((await http(`${url}/commands/order/o-2/place`, { method: 'POST', json: { customerId: 'c-1', items: [{ sku: 'tea', quantity: 9, unitPrice: 3 }] } })).status).toBe(200);
    await sagaDone(test.node.runtime, 'order-fulfilment', 'o-1');
    await sagaDone(test.node.runtime, 'order-fulfilment', 'o-2');

    const shown = await http(`${url}/sagas/order-fulfilment/o-1`);
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ saga: 'order-fulfilment', correlationId: 'o-1', status: 'completed', state: { order: 'confirmed' }, pending: { commands: [], timers: [] } });
    expect((shown.body as { version: number }).version).toBeGreaterThan(1);
    expect((await http(`${url}/sagas/order-fulfilment/nope`)).body).toMatchObject({ status: 404, code: 'SHARDLOG_NOT_FOUND' });
    expect((await http(`${url}/sagas/no-such-saga/o-1`)).body).toMatchObject({ status: 404, code: 'SHARDLOG_UNKNOWN_SAGA' });
    expect((await http(`${url}/sagas/order-fulfilment/%01`)).status).toBe(400);
    expect((await http(`${url}/admin/sagas?status=sideways`)).status).toBe(400);
    const listed = (await http(`${url}/admin/sagas?saga=order-fulfilment`)).body as { items: { correlationId: string; status: string }[] };
    expect(listed.items.map(({ correlationId, status }) => [correlationId, status]).sort()).toEqual([
      ['o-1', 'completed'],
      ['o-2', 'compensated'],
    ]);

    const metrics = (await fetch(`${url}/metrics`).then((response) => response.text())).split('\n');
    expect(metrics).toContain('shardlog_saga_started_total{saga="order-fulfilment"} 2');
    expect(metrics).toContain('shardlog_saga_completed_total{saga="order-fulfilment"} 1');
    expect(metrics).toContain('shardlog_saga_compensated_total{saga="order-fulfilment"} 1');
    expect(metrics).toContain('shardlog_saga_in_flight{saga="order-fulfilment"} 0');
    expect(metrics).toContain('shardlog_saga_pending_commands 0');

    const list = await cli(['sagas', 'list', '--url', url, '--status', 'compensated']);
    expect(list.code).toBe(0);
    expect(list.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { correlationId: string }).correlationId)).toEqual(['o-2']);
    const show = await cli(['sagas', 'show', 'order-fulfilment', 'o-2', '--url', url]);
    expect(show.code).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({ status: 'compensated', state: { failure: 'out-of-stock' } });
    const missing = await cli(['sagas', 'show', 'order-fulfilment', 'nope', '--url', url]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^shardlog: 404 SHARDLOG_NOT_FOUND/);
    const letters = await cli(['dlq', 'list', 'order-fulfilment', '--url', url]);
    expect(letters).toMatchObject({ code: 0, stdout: '' });
    const conflict = await cli(['dlq', 'retry', 'order-fulfilment', 'o-1', '--url', url]);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/SHARDLOG_DLQ_CONFLICT/);
  });
});
