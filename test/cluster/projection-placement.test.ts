import { describe, expect, it } from 'vitest';
import type { BusEvent } from '../../runtime/bus/bus-event.ts';
import { http } from '../support/node.ts';
import type { NodeProcess } from '../support/node-process.ts';
import { cliPath as cli, processCluster, runProcess as run } from '../support/process-cluster.ts';
import { streamEvents } from '../support/stream-events.ts';
import { waitFor } from '../support/wait-for.ts';

const partitions = 8;
const projections = ['account-balances', 'customer-stats'];
const accounts = Array.from({ length: 12 }, (_, index) => `acc-${index}`);
const customers = ['cu-a', 'cu-b', 'cu-c'];

const cluster = processCluster(partitions);
const { startMember, clusterStatus } = cluster;

async function projectionsRunOn(node: NodeProcess): Promise<string[]> {
  const body = (await http(`${node.url}/readyz`)).body as { projections: { name: string }[] };
  return body.projections.map((projection) => projection.name).sort();
}

/**
 * Waits until every projection is placed on one of `live` and runs there only: each node's
 * /readyz lists exactly the projections placed on it. Returns projection → node.
 */
async function placed(live: NodeProcess[], timeoutMs = 30_000): Promise<Map<string, NodeProcess>> {
  let last = '';
  try {
    await waitFor(
      async () => {
        const report = await clusterStatus();
        const runningOn = await Promise.all(live.map(async (node) => [node.nodeId, await projectionsRunOn(node)] as const));
        last = JSON.stringify({ placements: report.projections, runningOn });
        if (report.projections.length !== projections.length) return false;
        return live.every((node) => {
          const here = report.projections.filter((row) => row.node === node.nodeId).map((row) => row.projection).sort();
          return JSON.stringify(here) === JSON.stringify(runningOn.find(([nodeId]) => nodeId === node.nodeId)![1]);
        }) && report.projections.every((row) => live.some((node) => node.nodeId === row.node));
      },
      { timeoutMs, everyMs: 200 },
    );
  } catch (error) {
    throw new Error(`projections not placed on ${live.map((node) => node.nodeId).join(', ')}: ${last}`, { cause: error });
  }
  const report = await clusterStatus();
  return new Map(report.projections.map((row) => [row.projection, live.find((node) => node.nodeId === row.node)!]));
}

/** A command sent to a node, retried with the same Idempotency-Key on 503 (a partition or projection moving). */
async function command(node: NodeProcess, path: string, json: unknown, key: string): Promise<{ position: string }> {
  for (let attempt = 0; ; attempt++) {
    const answer = await http(`${node.url}/commands/${path}`, { method: 'POST', json, headers: { 'idempotency-key': key } });
    if (answer.status === 200) return answer.body as { position: string };
    if (answer.status !== 503 || attempt > 100) throw new Error(`${path} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

let written = 0;

/** Deposits to every account and orders for every customer, spread over the given nodes. */
async function workload(nodes: NodeProcess[], rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    const n = written++;
    await Promise.all([
      ...accounts.map((id, index) => command(nodes[(n + index) % nodes.length]!, `account/${id}/deposit`, { amount: (n % 7) + 1 }, `dep-${n}-${id}`)),
      ...customers.map((customerId, index) =>
        command(nodes[(n + index) % nodes.length]!, `order/ord-${n}-${customerId}/place`, { customerId, items: [{ sku: `sku-${index}`, quantity: 1, unitPrice: n + 1 }] }, `ord-${n}-${customerId}`),
      ),
    ]);
  }
}

interface Folded {
  balances: Map<string, { balance: number; deposits: number }>;
  customers: Map<string, { totalOrders: number; totalSpent: number }>;
}

/** What the two example projections must hold: the fold of everything in the stream. */
function fold(events: BusEvent[]): Folded {
  const balances = new Map<string, { balance: number; deposits: number }>();
  const customerOf = new Map<string, { customerId: string; total: number }>();
  const stats = new Map<string, { totalOrders: number; totalSpent: number }>();
  for (const event of events) {
    if (event.aggregate === 'account' && event.type === 'Deposited') {
      const doc = balances.get(event.id) ?? { balance: 0, deposits: 0 };
      balances.set(event.id, { balance: doc.balance + (event.data as { amount: number }).amount, deposits: doc.deposits + 1 });
    } else if (event.aggregate === 'order' && event.type === 'OrderPlaced') {
      const { customerId, total } = event.data as { customerId: string; total: number };
      customerOf.set(event.id, { customerId, total });
      const doc = stats.get(customerId) ?? { totalOrders: 0, totalSpent: 0 };
      stats.set(customerId, { totalOrders: doc.totalOrders + 1, totalSpent: doc.totalSpent + total });
    } else if (event.aggregate === 'order' && event.type === 'OrderCancelled') {
      const placedOrder = customerOf.get(event.id);
      if (placedOrder === undefined) continue;
      const doc = stats.get(placedOrder.customerId)!;
      stats.set(placedOrder.customerId, { totalOrders: doc.totalOrders - 1, totalSpent: doc.totalSpent - placedOrder.total });
    }
  }
  return { balances, customers: stats };
}

/**
 * Reads both views from every node (served or forwarded) until they equal the fold of the
 * stream. The fold is taken again each time: the orders' sagas may still be cancelling.
 */
async function viewsEqualTheFold(live: NodeProcess[]): Promise<void> {
  let expected = fold(await streamEvents(cluster.nats.url));
  for (const node of live) {
    let last: unknown;
    try {
      await waitFor(
        async () => {
          expected = fold(await streamEvents(cluster.nats.url));
          const balances = await Promise.all(accounts.map(async (id) => (await http(`${node.url}/views/account-balances/${id}`)).body as { balance?: number; deposits?: number }));
          const stats = await Promise.all(customers.map(async (id) => (await http(`${node.url}/views/customer-stats/${id}`)).body as { totalOrders?: number; totalSpent?: number }));
          last = { balances, stats };
          return (
            accounts.every((id, index) => balances[index]!.balance === expected.balances.get(id)!.balance && balances[index]!.deposits === expected.balances.get(id)!.deposits) &&
            customers.every((id, index) => stats[index]!.totalOrders === expected.customers.get(id)!.totalOrders && stats[index]!.totalSpent === expected.customers.get(id)!.totalSpent)
          );
        },
        { timeoutMs: 30_000, everyMs: 200 },
      );
    } catch (error) {
      throw new Error(`views read on ${node.nodeId} differ from the fold of the stream: ${JSON.stringify({ last, expected: { balances: [...expected.balances], customers: [...expected.customers] } })}`, {
        cause: error,
      });
    }
  }
}

describe('projections in a cluster', () => {
  it('run on one node each, are read from every node, and move on a leave and a kill without losing or double-applying', async () => {
    const n1 = await startMember('n1');
    const n2 = await startMember('n2');
    const n3 = await startMember('n3');
    let live = [n1, n2, n3];
    let where = await placed(live);
    for (const id of accounts) await command(n1, `account/${id}/open`, { owner: `owner-${id}` }, `open-${id}`);
    await workload(live, 3);
    await viewsEqualTheFold(live);

    // Read-your-writes from a node that does not run the projection.
    const balancesNode = where.get('account-balances')!;
    const elsewhere = live.find((node) => node !== balancesNode)!;
    const { position } = await command(elsewhere, 'account/acc-0/deposit', { amount: 1000 }, 'ryw-deposit');
    const read = await http(`${elsewhere.url}/views/account-balances/acc-0?after=${position}`);
    expect(read.status).toBe(200);
    expect((read.body as { balance: number }).balance).toBe(fold(await streamEvents(cluster.nats.url)).balances.get('acc-0')!.balance);
    const page = await http(`${elsewhere.url}/views/account-balances?owner=owner-acc-0&after=${position}`);
    expect(page.status).toBe(200);
    expect((page.body as { items: { key: string }[] }).items.map((item) => item.key)).toEqual(['acc-0']);
    // Problems come back from the node that runs it as they are.
    const missing = await http(`${elsewhere.url}/views/account-balances/nobody`);
    expect([missing.status, (missing.body as { code?: string }).code]).toEqual([404, 'SHARDLOG_NOT_FOUND']);
    const unknown = await http(`${elsewhere.url}/views/no-such-view/x`);
    expect([unknown.status, (unknown.body as { code?: string }).code]).toEqual([404, 'SHARDLOG_UNKNOWN_PROJECTION']);

    // Admin work from a node that does not run the projection.
    const { stdout: list } = await run(process.execPath, [cli, 'projections', 'list', '--url', elsewhere.url]);
    const lines = list.trim().split('\n').sort();
    expect(lines).toHaveLength(projections.length);
    for (const [index, name] of projections.entries()) expect(lines[index]).toMatch(new RegExp(`^${name}\\tv1\\t(live|catching-up)\\t${where.get(name)!.nodeId}$`));
    const { stdout: rebuilt } = await run(process.execPath, [cli, 'projections', 'rebuild', 'account-balances', '--url', elsewhere.url]);
    expect(rebuilt).toMatch(/^rebuilt account-balances: \d+ events/);
    const status = (await http(`${elsewhere.url}/admin/projections/account-balances`)).body as { node: string; lastRebuild: unknown };
    expect(status.node).toBe(balancesNode.nodeId);
    expect(status.lastRebuild).not.toBeNull();
    const { stderr: noLetters } = await run(process.execPath, [cli, 'dlq', 'list', 'account-balances', '--url', elsewhere.url]);
    expect(noLetters).toContain('account-balances has no dead letters');
    const retry = await http(`${elsewhere.url}/admin/projections/account-balances/dlq/999/retry`, { method: 'POST' });
    expect([retry.status, (retry.body as { code?: string }).code]).toEqual([409, 'SHARDLOG_DLQ_CONFLICT']);
    await viewsEqualTheFold(live);

    // A node that leaves (SIGTERM) gives its projections to the others.
    const leaver = where.get('account-balances')!;
    leaver.signal('SIGTERM');
    expect(await leaver.exited).toBe(0);
    live = live.filter((node) => node !== leaver);
    where = await placed(live);
    await workload(live, 2);
    await viewsEqualTheFold(live);

    // A node killed (SIGKILL) loses its projections to the survivor once the leader sees it dead.
    const victim = where.get('customer-stats')!;
    victim.signal('SIGKILL');
    await victim.exited;
    live = live.filter((node) => node !== victim);
    where = await placed(live);
    expect(new Set(where.values())).toEqual(new Set(live));
    await workload(live, 2);
    await viewsEqualTheFold(live);
  }, 240_000);
});
