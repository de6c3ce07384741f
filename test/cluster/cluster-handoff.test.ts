import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from '../support/nats-server.ts';
import { http, startTestNode, type TestNode } from '../support/node.ts';
import { subscribe } from '../support/sse-client.ts';
import { streamEvents, streamInvariants } from '../support/stream-events.ts';
import { waitFor } from '../support/wait-for.ts';

let nats: NatsServer;
const nodes: TestNode[] = [];

beforeAll(async () => {
  nats = await startNatsServer();
});

afterAll(async () => {
  await Promise.allSettled(nodes.map((node) => node.stop()));
  await nats.stop();
});

async function startMember(nodeId: string): Promise<TestNode> {
  const node = await startTestNode({ nodeId, nats: { servers: nats.url, prefix: 'shardlog' }, cluster: true, partitions: 8 });
  nodes.push(node);
  return node;
}

interface ClusterReady {
  cluster: { owned: number; acquiring: number; releasing: number };
}

/** Waits until the live nodes together serve every partition, none in handoff. */
async function settled(members: TestNode[], partitions = 8, timeoutMs = 20_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all(members.map(async (member) => ((await http(`${member.url}/readyz`)).body as ClusterReady).cluster));
    const owned = states.map((state) => state.owned);
    if (owned.reduce((a, b) => a + b, 0) === partitions && states.every((state) => state.acquiring === 0 && state.releasing === 0)) return owned;
    if (Date.now() > deadline) throw new Error(`not settled: ${JSON.stringify(states)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Sends a command until it gets a final answer, retrying 503s with the same key as a client should. */
async function send(url: string, path: string, json: unknown, key: string): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const answer = await http(`${url}${path}`, { method: 'POST', json, headers: { 'idempotency-key': key } });
    if (answer.status !== 503) return answer.status;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return 503;
}

describe('a cluster of nodes on one NATS', () => {
  it('refuses a node started with another partition count than the cluster was created with', async () => {
    const first = await startMember('p-check');
    await expect(startTestNode({ nodeId: 'p-wrong', nats: { servers: nats.url, prefix: 'shardlog' }, cluster: true, partitions: 4 })).rejects.toThrow(
      /created with 8 partitions and this node has 4/,
    );
    await first.node.leave();
    nodes.splice(nodes.indexOf(first), 1);
  });

  it('shares the partitions, forwards commands, and hands partitions off on join and leave without losing or repeating one', async () => {
    const a = await startMember('node-a');
    expect(await settled([a])).toEqual([8]);
    const accounts = Array.from({ length: 24 }, (_, index) => `acc-${index}`);
    for (const id of accounts) expect(await send(a.url, `/commands/account/${id}/open`, { owner: 'ann' }, `open-${id}`)).toBe(200);

    const b = await startMember('node-b');
    const deposits: Promise<number>[] = [];
    let sent = 0;
    const load = async (members: TestNode[], until: () => boolean): Promise<void> => {
      while (!until()) {
        const batch = accounts.map((id) => {
          const key = `dep-${sent++}`;
          return send(members[sent % members.length]!.url, `/commands/account/${id}/deposit`, { amount: 1 }, key);
        });
        deposits.push(...batch);
        await Promise.all(batch);
      }
    };
    let joined = false;
    await Promise.all([load([a, b], () => joined), settled([a, b]).then((owned) => {
      joined = true;
      expect(owned.every((count) => count > 0)).toBe(true);
    })]);

    const c = await startMember('node-c');
    let left = false;
    await Promise.all([
      load([a, c], () => left),
      (async () => {
        await settled([a, b, c]);
        await b.node.leave();
        nodes.splice(nodes.indexOf(b), 1);
        await settled([a, c]);
        left = true;
      })(),
    ]);
    const statuses = await Promise.all(deposits);
    expect(statuses.every((status) => status === 200)).toBe(true);

    const events = await streamEvents(nats.url);
    expect(streamInvariants(events)).toEqual([]);
    expect(events.filter((event) => event.type === 'Deposited')).toHaveLength(sent);
    expect(events.filter((event) => event.type === 'AccountOpened')).toHaveLength(accounts.length);

    // Any node answers an aggregate read from the partition's owner, whichever node that is now.
    const versions = new Map<string, number>();
    for (const event of events) versions.set(event.id, event.version);
    for (const member of [a, c]) {
      for (const id of accounts) {
        const read = await http(`${member.url}/aggregates/account/${id}`);
        expect(read.status).toBe(200);
        expect((read.body as { version: number }).version).toBe(versions.get(id));
        const history = await http(`${member.url}/aggregates/account/${id}/events?limit=1000`);
        expect((history.body as { events: unknown[] }).events).toHaveLength(versions.get(id)!);
      }
    }

    // A rebuild on a node whose files hold only some partitions still ends equal to the fold of the stream.
    const balances = new Map<string, number>();
    for (const event of events) if (event.type === 'Deposited') balances.set(event.id, (balances.get(event.id) ?? 0) + (event.data as { amount: number }).amount);
    const projections = c.node.runtime.projections;
    const rebuildStarted = Date.now();
    await projections.rebuild('account-balances');
    const deadline = Date.now() + 30_000;
    for (;;) {
      const status = await projections.statusOf('account-balances');
      const rebuilt = status.lastRebuild !== null && Date.parse(status.lastRebuild.finishedAt) >= rebuildStarted - 1_000;
      const docs = accounts.map((id) => (projections.get('account-balances', id) as { balance: number } | undefined)?.balance ?? 0);
      if (rebuilt && docs.every((balance, index) => balance === (balances.get(accounts[index]!) ?? 0))) break;
      if (Date.now() > deadline) throw new Error(`rebuild on c incomplete: ${JSON.stringify({ rebuilt, docs })}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    // Server-Sent Events from any node carry every node's events, in per-partition order.
    const sse = await subscribe(`${c.url}/events?from=start&aggregate=account`);
    const accountEvents = events.filter((event) => event.aggregate === 'account');
    for (const until = Date.now() + 15_000; sse.events().length < accountEvents.length && Date.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 100));
    await sse.close();
    const streamed = sse.events().map((message) => `${message.data!.id}@${message.data!.version}`);
    expect(new Set(streamed)).toEqual(new Set(accountEvents.map((event) => `${event.id}@${event.version}`)));
    expect(streamed).toHaveLength(accountEvents.length);
    // Live: every node's commits wake every node's streams.
    const live = await Promise.all([a, c].map((member) => subscribe(`${member.url}/events?aggregate=account`)));
    for (const id of accounts.slice(2, 6)) expect(await send(a.url, `/commands/account/${id}/deposit`, { amount: 1 }, `live-${id}`)).toBe(200);
    sent += 4;
    for (const until = Date.now() + 10_000; live.some((stream) => stream.events().length < 4) && Date.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 50));
    for (const stream of live) {
      await stream.close();
      expect(stream.events().map((message) => message.data!.id).sort()).toEqual(accounts.slice(2, 6).sort());
    }

    // A command accepted asynchronously by one node can be looked up on another.
    const accepted = await http(`${a.url}/commands/account/${accounts[1]}/deposit`, { method: 'POST', json: { amount: 1 }, headers: { prefer: 'respond-async', 'idempotency-key': 'async-1' } });
    expect(accepted.status).toBe(202);
    let lookup = await http(`${c.url}/commands/async-1`);
    for (const until = Date.now() + 10_000; lookup.status === 404 && Date.now() < until; ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      lookup = await http(`${c.url}/commands/async-1`);
    }
    expect(lookup.body).toMatchObject({ commandId: 'async-1', status: 'committed' });
    sent++;

    // A repeat of an acknowledged command, sent to any node after its partition moved, applies nothing.
    expect(await send(c.url, `/commands/account/${accounts[0]}/deposit`, { amount: 1 }, 'dep-0')).toBe(200);
    expect((await streamEvents(nats.url)).filter((event) => event.type === 'Deposited')).toHaveLength(sent);
  }, 90_000);
});

describe('a cluster while NATS restarts', () => {
  it('goes on after NATS restarts mid-load: every partition served again, every acknowledged command in the stream exactly once', async () => {
    const x = await startTestNode({ nodeId: 'x', nats: { servers: nats.url, prefix: 'outage' }, cluster: true, partitions: 8 });
    const y = await startTestNode({ nodeId: 'y', nats: { servers: nats.url, prefix: 'outage' }, cluster: true, partitions: 8 });
    nodes.push(x, y);
    await settled([x, y]);
    const acknowledged = new Set<string>();
    let stop = false;
    let n = 0;
    const client = async (): Promise<void> => {
      while (!stop) {
        const key = `o-${n++}`;
        const member = n % 2 === 0 ? x : y;
        const answer = await http(`${member.url}/commands/account/o-${n % 12}/deposit`, { method: 'POST', json: { amount: 1 }, headers: { 'idempotency-key': key } }).catch(() => undefined);
        if (answer?.status === 200) acknowledged.add(key);
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    for (let index = 0; index < 12; index++) {
      expect(await send(x.url, `/commands/account/o-${index}/open`, { owner: 'ann' }, `o-open-${index}`)).toBe(200);
    }
    const clients = Array.from({ length: 4 }, client);
    await waitFor(() => acknowledged.size >= 20, { timeoutMs: 60_000 });
    await nats.restart();
    // More acknowledgements than the clients had requests in flight: some were sent after the restart.
    const before = acknowledged.size;
    await waitFor(() => acknowledged.size >= before + 20, { timeoutMs: 60_000 });
    stop = true;
    await Promise.all(clients);
    await settled([x, y]);
    const events = await streamEvents(nats.url, 'outage');
    expect(streamInvariants(events)).toEqual([]);
    const deposits = new Map<string, number>();
    for (const event of events) if (event.type === 'Deposited') deposits.set(String(event.metadata.commandId), (deposits.get(String(event.metadata.commandId)) ?? 0) + 1);
    for (const key of acknowledged) expect(deposits.get(key), key).toBe(1);
    expect([...deposits.values()].every((count) => count === 1)).toBe(true);
  }, 90_000);
});
