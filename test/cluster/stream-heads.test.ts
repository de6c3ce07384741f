import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from '../support/nats-server.ts';
import { http, startTestNode, type TestNode } from '../support/node.ts';
import { subscribe } from '../support/sse-client.ts';
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

async function metric(node: TestNode, name: string): Promise<number> {
  const text = (await http(`${node.url}/metrics`)).body as string;
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no ${name} in /metrics`);
  return Number(line.slice(name.length + 1));
}

async function ownerOf(node: TestNode, id: string): Promise<string | undefined> {
  const answer = await http(`${node.url}/cluster/partitions?aggregate=account&id=${id}`);
  return (answer.body as { owners: { nodeId: string }[] }).owners[0]?.nodeId;
}

async function ok(url: string, json: unknown): Promise<void> {
  const answer = await http(url, { method: 'POST', json });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
}

/**
 * A forwarded read on `node` travels over the same NATS connection as a subscription to the
 * event subjects would: once it is answered, any batch published before has reached the node.
 */
async function barrier(node: TestNode, id: string): Promise<void> {
  expect((await http(`${node.url}/aggregates/account/${id}`)).status).toBe(200);
}

describe('other nodes’ partition heads, followed only for GET /events', () => {
  it('receives no batch of other nodes while no SSE stream is open; an opened stream learns the heads first, streams every node’s events live and resumes with Last-Event-ID', async () => {
    const a = await startTestNode({ nodeId: 'heads-a', nats: { servers: nats.url, prefix: 'heads' }, cluster: true, partitions: 8 });
    nodes.push(a);
    const b = await startTestNode({ nodeId: 'heads-b', nats: { servers: nats.url, prefix: 'heads' }, cluster: true, partitions: 8 });
    nodes.push(b);
    // Accounts a serves, once b has its share (then a keeps these).
    let onA: string[] = [];
    await waitFor(
      async () => {
        const owners = await Promise.all(Array.from({ length: 40 }, async (_, index) => [`h-${index}`, await ownerOf(b, `h-${index}`)] as const));
        onA = owners.filter(([, owner]) => owner === 'heads-a').map(([id]) => id);
        return onA.length >= 6 && owners.some(([, owner]) => owner === 'heads-b') && (await metric(a, 'shardlog_cluster_owned_partitions')) + (await metric(b, 'shardlog_cluster_owned_partitions')) === 8;
      },
      { timeoutMs: 20_000, everyMs: 100 },
    );
    const [first, second, third, fourth, fifth] = onA as [string, string, string, string, string];

    // Idle of readers: a's batches never reach b.
    for (const id of [first, second]) await ok(`${a.url}/commands/account/${id}/open`, { owner: id });
    await barrier(b, first);
    expect(await metric(b, 'shardlog_cluster_head_followers')).toBe(0);
    expect(await metric(b, 'shardlog_cluster_head_messages_total')).toBe(0);

    // A stream from the start on b sees what a published before it opened (heads learned first), nothing from "now".
    const fromStart = await subscribe(`${b.url}/events?from=start&aggregate=account`);
    const fromNow = await subscribe(`${b.url}/events?aggregate=account`);
    expect(fromStart.response.status).toBe(200);
    await waitFor(() => fromStart.events().length === 2);
    expect(fromStart.events().map((event) => event.data!.id).sort()).toEqual([first, second].sort());
    expect(await metric(b, 'shardlog_cluster_head_followers')).toBe(2);

    // Live: a's commits wake b's streams.
    await ok(`${a.url}/commands/account/${third}/open`, { owner: third });
    await waitFor(() => fromStart.events().length === 3 && fromNow.events().length === 1);
    expect(fromNow.events().map((event) => `${event.data!.id}:${event.data!.type}`)).toEqual([`${third}:AccountOpened`]);
    expect(await metric(b, 'shardlog_cluster_head_messages_total')).toBeGreaterThan(0);
    const resumeFrom = fromStart.events().at(-1)!.id!;
    await fromStart.close();
    await fromNow.close();

    // Closed: b follows nothing again, and a's next batches do not reach it.
    await waitFor(async () => (await metric(b, 'shardlog_cluster_head_followers')) === 0);
    const received = await metric(b, 'shardlog_cluster_head_messages_total');
    await ok(`${a.url}/commands/account/${fourth}/open`, { owner: fourth });
    await ok(`${a.url}/commands/account/${fifth}/open`, { owner: fifth });
    await barrier(b, fifth);
    expect(await metric(b, 'shardlog_cluster_head_messages_total')).toBe(received);

    // Resumed with Last-Event-ID: exactly what was published while nobody followed.
    const resumed = await subscribe(`${b.url}/events?aggregate=account`, { 'last-event-id': resumeFrom });
    await waitFor(() => resumed.events().length >= 2);
    await ok(`${a.url}/commands/account/${first}/deposit`, { amount: 5 });
    await waitFor(() => resumed.events().length === 3);
    await resumed.close();
    // Partitions have no order between them: the set, each once.
    expect(resumed.events().map((event) => `${event.data!.id}:${event.data!.type}`).sort()).toEqual([`${fourth}:AccountOpened`, `${fifth}:AccountOpened`, `${first}:Deposited`].sort());
  }, 60_000);

  it('answers 503 SHARDLOG_EVENTS_UNAVAILABLE when NATS does not answer as a stream opens, and streams again once NATS is back', async () => {
    const server = await startNatsServer();
    const c = await startTestNode({ nodeId: 'heads-c', nats: { servers: server.url, prefix: 'heads-outage' }, cluster: true, partitions: 8 });
    nodes.push(c);
    try {
      await waitFor(async () => (await metric(c, 'shardlog_cluster_owned_partitions')) === 8, { timeoutMs: 20_000, everyMs: 100 });
      await ok(`${c.url}/commands/account/o-1/open`, { owner: 'o-1' });
      await server.pause();
      const refused = await http(`${c.url}/events?from=start`);
      expect(refused.status).toBe(503);
      expect((refused.body as { code: string }).code).toBe('SHARDLOG_EVENTS_UNAVAILABLE');
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(await metric(c, 'shardlog_cluster_head_followers')).toBe(0);
      await server.start();
      let stream: Awaited<ReturnType<typeof subscribe>> | undefined;
      await waitFor(
        async () => {
          const attempt = await subscribe(`${c.url}/events?from=start&aggregate=account`);
          if (attempt.response.status === 200) stream = attempt;
          else await attempt.close();
          return stream !== undefined;
        },
        { timeoutMs: 20_000, everyMs: 250 },
      );
      await waitFor(() => stream!.events().length === 1);
      await stream!.close();
      expect(stream!.events()[0]!.data).toMatchObject({ id: 'o-1', type: 'AccountOpened' });
    } finally {
      await c.stop();
      nodes.splice(nodes.indexOf(c), 1);
      await server.stop();
    }
  }, 60_000);
});
