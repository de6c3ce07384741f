import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseTokens } from '../../gateway/auth.ts';
import { poisonUntilFixed } from '../fixtures/ledger-app.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { http, startTestNode } from '../support/node.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';

const cli = fileURLToPath(new URL('../../cli/shardlog.mjs', import.meta.url));
const ledgerApp = new URL('../fixtures/ledger-app.ts', import.meta.url).href;
const run = promisify(execFile);
const cleanup = cleanupAfterEach();

/** Runs the CLI without blocking this process (the node under test lives in it). */
async function shardlog(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('GET /views', () => {
  it('reads your writes with ?after=, pages by an indexed field, and answers problems', async () => {
    const { url, stop } = await startTestNode();
    cleanup.push(stop);
    const opened = await http(`${url}/commands/account/v-1/open`, { method: 'POST', json: { owner: 'vera' } });
    const deposit = await http(`${url}/commands/account/v-1/deposit`, { method: 'POST', json: { amount: 12 } });
    const position = (deposit.body as { position: string }).position;
    expect(opened.status).toBe(200);
    const read = await http(`${url}/views/account-balances/v-1?after=${position}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual({ owner: 'vera', balance: 12, deposits: 1, withdrawals: 0, closed: false });

    const metrics = (await http(`${url}/metrics`)).body as string;
    expect(metrics).toMatch(/shardlog_projection_lag_events\{projection="account-balances"\} 0/);
    expect(metrics).toMatch(/shardlog_projection_events_applied_total\{projection="account-balances"\} [1-9]/);
    expect(metrics).toMatch(/shardlog_projection_dead_letters\{projection="customer-stats"\} 0/);
    expect((await http(`${url}/readyz`)).body).toMatchObject({ status: 'ready', bus: { kind: 'embedded' }, projections: [{ name: 'account-balances', state: 'live' }, { name: 'customer-stats' }] });

    const page = await http(`${url}/views/account-balances?owner=vera&limit=10&after=${position}`);
    expect(page.body).toEqual({ items: [{ key: 'v-1', doc: expect.objectContaining({ balance: 12 }) }], cursor: null });

    const missing = await http(`${url}/views/account-balances/nobody`);
    expect(missing.status).toBe(404);
    expect(missing.contentType).toContain('application/problem+json');
    expect((await http(`${url}/views/no-such-view/x`)).body).toMatchObject({ status: 404, code: 'SHARDLOG_UNKNOWN_PROJECTION' });
    expect((await http(`${url}/views/account-balances/v-1?after=banana`)).body).toMatchObject({ status: 400, code: 'SHARDLOG_INVALID_QUERY' });
    expect((await http(`${url}/views/account-balances/v-1?after=999:1`)).status).toBe(400);
    expect((await http(`${url}/views/account-balances?balance=12`)).body).toMatchObject({ status: 400, detail: expect.stringContaining('not an indexed field') });
    expect((await http(`${url}/views/account-balances`)).status).toBe(400);
    expect((await http(`${url}/views/account-balances?owner=vera&cursor=***`)).status).toBe(400);
  });

  it('answers 504 saying how far behind when the projection cannot catch up within the bound, 503 when it is halted', async () => {
    // slow-totals is held still until the 504 is seen, so it cannot have caught up by then.
    const hold = makeTempDir();
    cleanup.push(hold.remove);
    const holdFile = join(hold.dir, 'hold');
    writeFileSync(holdFile, '');
    process.env.LEDGER_HOLD_FILE = holdFile;
    cleanup.push(() => {
      delete process.env.LEDGER_HOLD_FILE;
    });
    const { url, stop } = await startTestNode({ appModule: ledgerApp, viewWaitMs: 100 });
    cleanup.push(stop);
    cleanup.push(() => rmSync(holdFile, { force: true }));
    let last = '';
    let poison = '';
    await Promise.all(
      Array.from({ length: 200 }, async (_, index) => {
        const reply = await http(`${url}/commands/ledger/l-${index % 4}/enter`, { method: 'POST', json: { amount: index === 199 ? 13 : 1 } });
        expect(reply.status).toBe(200);
        last = (reply.body as { position: string }).position;
        if (index === 199) poison = last;
      }),
    );
    const behind = await http(`${url}/views/slow-totals/l-0?after=${last}`);
    expect(behind.status).toBe(504);
    expect(behind.contentType).toContain('application/problem+json');
    expect(behind.body).toMatchObject({ code: 'SHARDLOG_VIEW_BEHIND', behindBy: expect.any(Number) });
    expect((behind.body as { behindBy: number }).behindBy).toBeGreaterThan(0);
    expect((behind.body as { detail: string }).detail).toMatch(/ after 100 ms$/);
    rmSync(holdFile);

    await waitFor(async () => (await http(`${url}/admin/projections/halting-totals`)).body !== null && ((await http(`${url}/admin/projections/halting-totals`)).body as { state: string }).state === 'halted', {
      timeoutMs: 20_000,
    });
    const halted = await http(`${url}/views/halting-totals/main?after=${poison}`);
    expect(halted.status).toBe(503);
    expect(halted.body).toMatchObject({ code: 'SHARDLOG_PROJECTION_HALTED' });
    expect(halted.headers.get('retry-after')).not.toBeNull();
  });
});

describe('projection admin routes and CLI', () => {
  it('lists, shows status, rebuilds with progress, and handles dead letters', async () => {
    const temp = poisonUntilFixed();
    cleanup.push(temp.undo);
    const { fixFile } = temp;
    const { url, stop } = await startTestNode({ appModule: ledgerApp });
    cleanup.push(stop);
    for (const amount of [1, 13, 2]) await http(`${url}/commands/ledger/l-1/enter`, { method: 'POST', json: { amount } });
    await waitFor(async () => ((await http(`${url}/admin/projections/halting-totals`)).body as { state: string }).state === 'halted', { timeoutMs: 20_000 });

    const list = await shardlog(['projections', 'list', '--url', url]);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain('halting-totals\tv1\thalted');
    const status = await shardlog(['projections', 'status', 'halting-totals', '--url', url]);
    expect(status.stdout).toMatch(/^halting-totals v1: halted, .*dead letters 1 HALTED at \d+:2 \(dead letter 1: 13 is unlucky\)/);

    const dlq = await shardlog(['dlq', 'list', 'halting-totals', '--url', url]);
    const parked = JSON.parse(dlq.stdout.trim()) as { id: number; data: unknown };
    expect(parked).toMatchObject({ id: 1, data: { amount: 13, book: 'main' } });
    const stillBroken = await shardlog(['dlq', 'retry', 'halting-totals', '1', '--url', url]);
    expect(stillBroken.code).toBe(1);
    expect(stillBroken.stderr.trim()).toMatch(/^shardlog: 409 SHARDLOG_DLQ_CONFLICT: dead letter 1 failed again: 13 is unlucky$/);
    writeFileSync(fixFile, '');
    const retried = await shardlog(['dlq', 'retry', 'halting-totals', '1', '--url', url]);
    expect(retried.stdout.trim()).toBe('applied dead letter 1 of halting-totals');
    await waitFor(async () => ((await http(`${url}/views/halting-totals/main`)).body as { entries?: number }).entries === 3);

    const rebuild = await shardlog(['projections', 'rebuild', 'skipping-totals', '--url', url]);
    expect(rebuild.code).toBe(0);
    expect(rebuild.stdout).toMatch(/^rebuilt skipping-totals: \d+ events in [\d.]+ s; reads now use the new build/);
    // The rebuild runs the fixed handler over every event: 13 is applied this time.
    expect((await http(`${url}/views/skipping-totals/main`)).body).toEqual({ total: 16, entries: 3 });

    const unknown = await shardlog(['projections', 'status', 'nope', '--url', url]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toBe('shardlog: 404 SHARDLOG_UNKNOWN_PROJECTION: unknown projection "nope"');
    const unreachable = await shardlog(['projections', 'list', '--url', 'http://127.0.0.1:9']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr.trim()).toMatch(/^shardlog: cannot reach a node at http:\/\/127\.0\.0\.1:9/);
  });

  it('needs the admin scope', async () => {
    const tokens = parseTokens(
      JSON.stringify({ tokens: [{ name: 'reader', token: 'reader-token-0123456789', scopes: ['read'] }, { name: 'ops', token: 'admin-token-0123456789', scopes: ['admin'] }] }),
      'test',
    );
    const { url, stop } = await startTestNode({ tokens });
    cleanup.push(stop);
    const asReader = await http(`${url}/admin/projections`, { headers: { authorization: 'Bearer reader-token-0123456789' } });
    expect(asReader.status).toBe(403);
    const asAdmin = await http(`${url}/admin/projections`, { headers: { authorization: 'Bearer admin-token-0123456789' } });
    expect(asAdmin.status).toBe(200);
    expect((await http(`${url}/views/account-balances/x`, { headers: { authorization: 'Bearer reader-token-0123456789' } })).status).toBe(404);
  });
});
