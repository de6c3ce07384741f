import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionOf } from '../../runtime/index.ts';
import { startNatsServer, type NatsServer } from '../support/nats-server.ts';
import { http } from '../support/node.ts';
import { killNodes, startNodeProcess, type NodeProcess } from '../support/node-process.ts';
import { streamEvents, streamInvariants } from '../support/stream-events.ts';

const partitions = 16;
const accounts = Array.from({ length: 60 }, (_, index) => `acc-${index}`);

interface Owner {
  partition: number;
  nodeId: string;
  url: string | null;
  epoch: number;
}

interface ClusterState {
  owned: number;
  acquiring: number;
  releasing: number;
  counters: { forwarded: number; forwardedBatches: number; forwardedFailed: number };
}

let nats: NatsServer;
const nodes: NodeProcess[] = [];

async function clusterOf(node: NodeProcess): Promise<ClusterState> {
  return ((await http(`${node.url}/readyz`)).body as { cluster: ClusterState }).cluster;
}

async function ownersSeenBy(node: NodeProcess): Promise<Owner[]> {
  const answer = await http(`${node.url}/cluster/partitions`);
  expect(answer.status).toBe(200);
  return (answer.body as { owners: Owner[] }).owners;
}

/** Until every node serves its share, no handoff under way, and every node knows every owner's URL. */
async function settled(timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all(nodes.map(clusterOf));
    const views = await Promise.all(nodes.map(ownersSeenBy));
    const owned = states.reduce((sum, state) => sum + state.owned, 0);
    const moving = states.some((state) => state.acquiring + state.releasing > 0);
    if (owned === partitions && !moving && views.every((owners) => owners.length === partitions && owners.every((owner) => owner.url !== null))) return;
    if (Date.now() > deadline) throw new Error(`cluster not settled: ${JSON.stringify(states)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  nats = await startNatsServer();
  for (const nodeId of ['n1', 'n2', 'n3']) nodes.push(await startNodeProcess(nodeId, ['--nats', nats.url, '--partitions', String(partitions), '--shards', '1']));
  await settled();
  for (const id of accounts) expect((await http(`${nodes[0]!.url}/commands/account/${id}/open`, { method: 'POST', json: { owner: `owner-${id}` } })).status).toBe(200);
}, 120_000);

afterAll(async () => {
  await killNodes(nodes);
  await nats?.stop();
});

describe('routing commands in a cluster', () => {
  it('forwards concurrent commands from every node in batches, each applied exactly once', async () => {
    const before = await Promise.all(nodes.map(clusterOf));
    const acknowledged = new Set<string>();
    let next = 0;
    const total = 600;
    const client = async (): Promise<void> => {
      for (let n = next++; n < total; n = next++) {
        const key = `routed-${n}`;
        const answer = await http(`${nodes[n % nodes.length]!.url}/commands/account/${accounts[(n * 7) % accounts.length]}/deposit`, {
          method: 'POST',
          json: { amount: 1 },
          headers: { 'idempotency-key': key },
        });
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        acknowledged.add(key);
      }
    };
    await Promise.all(Array.from({ length: 48 }, client));
    expect(acknowledged.size).toBe(total);

    const after = await Promise.all(nodes.map(clusterOf));
    const forwarded = after.reduce((sum, state, index) => sum + state.counters.forwarded - before[index]!.counters.forwarded, 0);
    const batches = after.reduce((sum, state, index) => sum + state.counters.forwardedBatches - before[index]!.counters.forwardedBatches, 0);
    // About two thirds of the commands reach a node that does not own their partition.
    expect(forwarded).toBeGreaterThan(total / 3);
    // Commands arriving together for one owner share a request.
    expect(batches).toBeLessThan(forwarded);
    expect(after.every((state) => state.counters.forwardedFailed === 0)).toBe(true);

    const events = await streamEvents(nats.url);
    expect(streamInvariants(events)).toEqual([]);
    const perCommand = new Map<string, number>();
    for (const event of events) {
      const commandId = String(event.metadata.commandId);
      if (commandId.startsWith('routed-')) perCommand.set(commandId, (perCommand.get(commandId) ?? 0) + 1);
    }
    expect(perCommand.size).toBe(total);
    expect([...perCommand.values()].every((count) => count === 1)).toBe(true);

    // A repeat through another node is answered from the record and appends nothing.
    const repeat = await http(`${nodes[1]!.url}/commands/account/${accounts[0]}/deposit`, { method: 'POST', json: { amount: 1 }, headers: { 'idempotency-key': 'routed-0' } });
    expect(repeat.status).toBe(200);
    expect((await streamEvents(nats.url)).length).toBe(events.length);
  }, 120_000);

  it('names the owner in Shardlog-Owner, and a client that follows it is not forwarded', async () => {
    const owners = await ownersSeenBy(nodes[0]!);
    const urlOf = new Map(nodes.map((node) => [node.nodeId, node.url]));
    for (const owner of owners) expect(owner.url).toBe(urlOf.get(owner.nodeId));

    const id = accounts.find((account) => owners[partitionOf(`account/${account}`, partitions)]!.nodeId !== 'n1')!;
    const owner = owners[partitionOf(`account/${id}`, partitions)]!;
    const first = await http(`${nodes[0]!.url}/commands/account/${id}/deposit`, { method: 'POST', json: { amount: 1 } });
    expect(first.status).toBe(200);
    expect(first.headers.get('shardlog-owner')).toBe(owner.url);

    const ownerNode = nodes.find((node) => node.nodeId === owner.nodeId)!;
    const before = (await clusterOf(ownerNode)).counters.forwarded;
    for (let n = 0; n < 5; n++) {
      const followed = await http(`${first.headers.get('shardlog-owner')!}/commands/account/${id}/deposit`, { method: 'POST', json: { amount: 1 } });
      expect(followed.status).toBe(200);
      expect(followed.headers.get('shardlog-owner')).toBe(owner.url);
    }
    expect((await clusterOf(ownerNode)).counters.forwarded).toBe(before);

    // Errors carry the hint too.
    const rejected = await http(`${nodes[0]!.url}/commands/account/${id}/withdraw`, { method: 'POST', json: { amount: 1e12 } });
    expect(rejected.status).toBe(422);
    expect(rejected.headers.get('shardlog-owner')).toBe(owner.url);
    const invalid = await http(`${nodes[0]!.url}/commands/account/${id}/deposit`, { method: 'POST', json: { amount: -1 } });
    expect(invalid.status).toBe(400);
    expect(invalid.headers.get('shardlog-owner')).toBe(owner.url);
  });

  it('lists partition owners, or one aggregate’s, on GET /cluster/partitions', async () => {
    const all = await http(`${nodes[2]!.url}/cluster/partitions`);
    expect(all.body).toMatchObject({ partitions });
    expect((all.body as { owners: Owner[] }).owners.map((owner) => owner.partition)).toEqual(Array.from({ length: partitions }, (_, partition) => partition));

    const one = await http(`${nodes[2]!.url}/cluster/partitions?aggregate=account&id=acc-7`);
    expect(one.status).toBe(200);
    const [owner] = (one.body as { owners: Owner[] }).owners;
    expect(owner).toEqual((all.body as { owners: Owner[] }).owners[partitionOf('account/acc-7', partitions)]);

    const unknown = await http(`${nodes[2]!.url}/cluster/partitions?aggregate=nope&id=x`);
    expect(unknown.status).toBe(404);
    expect((unknown.body as { code: string }).code).toBe('SHARDLOG_UNKNOWN_AGGREGATE');
    const half = await http(`${nodes[2]!.url}/cluster/partitions?aggregate=account`);
    expect(half.status).toBe(400);
    expect((half.body as { code: string }).code).toBe('SHARDLOG_INVALID_QUERY');
  });

  it('reads its own write through ?after= on another node than the one that took it', async () => {
    const id = accounts[3]!;
    for (const [writer, reader] of [
      [0, 1],
      [1, 2],
      [2, 0],
    ] as const) {
      const written = await http(`${nodes[writer]!.url}/commands/account/${id}/deposit`, { method: 'POST', json: { amount: 5 } });
      expect(written.status).toBe(200);
      const { position } = written.body as { position: string };
      const read = await http(`${nodes[reader]!.url}/views/account-balances/${id}?after=${position}`);
      expect(read.status).toBe(200);
      const events = (await streamEvents(nats.url)).filter((event) => event.id === id && event.type === 'Deposited');
      expect((read.body as { balance: number }).balance).toBe(events.reduce((sum, event) => sum + (event.data as { amount: number }).amount, 0));
    }
  });
});
