import { describe, expect, it } from 'vitest';
import { http } from '../support/node.ts';
import type { NodeProcess } from '../support/node-process.ts';
import { processCluster } from '../support/process-cluster.ts';
import { streamEvents, streamInvariants } from '../support/stream-events.ts';
import { waitFor } from '../support/wait-for.ts';

const partitions = 16;
const accounts = Array.from({ length: 40 }, (_, index) => `acc-${index}`);

const cluster = processCluster(partitions);
const { startMember, clusterStatus } = cluster;

/** Waits until the given nodes serve every partition between them, one owner each, no handoff under way. */
async function settled(members: NodeProcess[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all(
      members.map(async (member) => ((await http(`${member.url}/readyz`)).body as { cluster: { owned: number; acquiring: number; releasing: number } }).cluster),
    );
    const report = await clusterStatus();
    const owners = new Set(members.map((member) => member.nodeId));
    const assigned = report.assignments.filter((row) => owners.has(row.owner) && row.target === null).length;
    if (states.reduce((sum, state) => sum + state.owned, 0) === partitions && states.every((state) => state.acquiring + state.releasing === 0) && assigned === partitions) return;
    if (Date.now() > deadline) throw new Error(`cluster not settled: ${JSON.stringify({ states, report })}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

interface Load {
  acknowledged: Map<string, number>;
  unanswered: Set<string>;
  retries: () => number;
  stop: () => Promise<void>;
}

/**
 * Deposits from 8 clients to random live nodes until stopped. A client that gets a 503 or
 * loses its connection retries the same Idempotency-Key on another node, as a client should.
 */
function depositLoad(live: () => NodeProcess[]): Load {
  const acknowledged = new Map<string, number>();
  const unanswered = new Set<string>();
  let stopping = false;
  let next = 0;
  let retries = 0;
  const client = async (): Promise<void> => {
    while (!stopping) {
      const n = next++;
      const key = `dep-${n}`;
      const amount = (n % 9) + 1;
      let answered = false;
      for (let attempt = 0; attempt < 200 && !answered; attempt++) {
        const nodes = live();
        const node = nodes[(n + attempt) % nodes.length]!;
        const status = await http(`${node.url}/commands/account/${accounts[n % accounts.length]}/deposit`, {
          method: 'POST',
          json: { amount },
          headers: { 'idempotency-key': key },
        }).then(
          (answer) => answer.status,
          () => 0,
        );
        if (status === 200) {
          acknowledged.set(key, amount);
          answered = true;
        } else if (status !== 503 && status !== 0) {
          throw new Error(`deposit ${key} answered ${status}`);
        } else {
          retries++;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      if (!answered) unanswered.add(key);
    }
  };
  const clients = Array.from({ length: 8 }, client);
  return {
    acknowledged,
    unanswered,
    retries: () => retries,
    stop: async () => {
      stopping = true;
      await Promise.all(clients);
    },
  };
}

describe('a cluster of shardlog processes', () => {
  it('keeps every acknowledged command exactly once while a node joins, one leaves on SIGTERM and one is SIGKILLed', async () => {
    const n1 = await startMember('n1');
    const n2 = await startMember('n2');
    const n3 = await startMember('n3');
    let live = [n1, n2, n3];
    await settled(live);
    for (const id of accounts) expect((await http(`${n1.url}/commands/account/${id}/open`, { method: 'POST', json: { owner: 'ann' }, headers: { 'idempotency-key': `open-${id}` } })).status).toBe(200);

    const load = depositLoad(() => live);
    await waitFor(() => load.acknowledged.size >= 50, { timeoutMs: 60_000 });
    const n4 = await startMember('n4');
    live = [...live, n4];
    await settled(live);

    n2.signal('SIGTERM');
    expect(await n2.exited).toBe(0);
    live = live.filter((node) => node !== n2);
    await settled(live);

    n3.signal('SIGKILL');
    live = live.filter((node) => node !== n3);
    await n3.exited;
    await settled(live);
    // The nodes left serve on: acknowledgements go on after the kill.
    const afterKill = load.acknowledged.size;
    await waitFor(() => load.acknowledged.size >= Math.max(afterKill + 20, 101), { timeoutMs: 60_000 });
    await load.stop();

    console.log(`acknowledged ${load.acknowledged.size}, retried ${load.retries()}`);
    expect(load.unanswered.size).toBe(0);
    const events = await streamEvents(cluster.nats.url);
    expect(streamInvariants(events)).toEqual([]);
    const byCommand = new Map<string, number>();
    for (const event of events) byCommand.set(String(event.metadata.commandId), (byCommand.get(String(event.metadata.commandId)) ?? 0) + 1);
    expect([...byCommand.values()].every((count) => count === 1)).toBe(true);
    for (const key of load.acknowledged.keys()) expect(byCommand.get(key), key).toBe(1);

    const report = await clusterStatus();
    expect(report.assignments).toHaveLength(partitions);
    expect(new Set(report.assignments.map((row) => row.owner))).toEqual(new Set(['n1', 'n4']));

    // Every node's projection equals the fold of the stream.
    const balances = new Map<string, number>();
    for (const event of events) if (event.type === 'Deposited') balances.set(event.id, (balances.get(event.id) ?? 0) + (event.data as { amount: number }).amount);
    for (const node of live) {
      const deadline = Date.now() + 20_000;
      for (const id of accounts) {
        for (;;) {
          const doc = (await http(`${node.url}/views/account-balances/${id}`)).body as { balance?: number };
          if (doc.balance === (balances.get(id) ?? 0)) break;
          if (Date.now() > deadline) expect(doc.balance, `${node.nodeId} ${id}`).toBe(balances.get(id) ?? 0);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    }
  }, 180_000);
});
