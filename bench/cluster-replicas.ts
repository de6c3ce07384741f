/**
 * R1 against R3: what a replicated event stream costs one Shardlog node, and how long one
 * loss of the stream's leader leaves it unable to acknowledge. A 3-server NATS cluster on
 * loopback (test/support/nats-cluster.ts) and two single-node Shardlog clusters on it, one
 * per prefix: `r1` with `--nats-replicas 1`, `r3` with `--nats-replicas 3` (64 partitions,
 * one shard, fsync). Deposits over HTTP (node:http keep-alive) from this process.
 * - Throughput and p50/p99, closed loop with 64 in flight, R1 and R3 in alternating halves
 *   of `seconds` each, so the machine's noise falls on both alike.
 * - One stream-leader loss: an open loop at a quarter of the R3 rate, the nats-server that
 *   leads `R3_EVENTS` SIGKILLed 2 s in; the longest time without an acknowledgement, the
 *   slowest answer and the commands that failed (each a 503 with Retry-After).
 * Every server, both nodes and the client share this machine's cores.
 */
import { Agent } from 'node:http';
import { postJson, Refused } from './support/post-json.ts';
import { startNatsCluster, type NatsCluster } from '../test/support/nats-cluster.ts';
import { startNodeProcess, type NodeProcess } from '../test/support/node-process.ts';
import { Latencies, round } from './support/latency.ts';
import { closedLoop, openLoop } from './support/load.ts';
import type { ResultRow } from './support/results.ts';

const partitions = 64;
const accounts = 500;
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

const post = (url: string, path: string, body: unknown) => postJson(agent, url, path, body);

const deposit = (node: NodeProcess) => (index: number) => post(node.url, `/commands/account/acc-${(index * 7919) % accounts}/deposit`, { amount: 1 });

async function startReplicaNode(nats: NatsCluster, replicas: number): Promise<NodeProcess> {
  const node = await startNodeProcess(`r${replicas}`, [
    '--nats', nats.urls.join(','), '--nats-prefix', `r${replicas}`, '--nats-replicas', String(replicas), '--partitions', String(partitions), '--shards', '1', '--log-level', 'error',
  ]);
  // Right after start a command can find its partition not yet assigned (503): try again.
  const deadline = Date.now() + 60_000;
  await Promise.all(
    Array.from({ length: accounts }, async (_, index) => {
      for (;;) {
        try {
          await post(node.url, `/commands/account/acc-${index}/open`, { owner: 'bench' });
          return;
        } catch (error) {
          if (!(error instanceof Refused) || error.status !== 503 || Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    }),
  );
  return node;
}

/** The stream leader of R3 killed under an open loop: the unavailability it causes. */
async function leaderLoss(nats: NatsCluster, node: NodeProcess, rate: number): Promise<ResultRow> {
  const leader = await nats.leaderOf('R3_EVENTS');
  const acknowledgedAt: number[] = [];
  const failures = new Map<string, number>();
  const latencies = new Latencies();
  let killedAt = 0;
  const load = openLoop(
    async (index) => {
      const started = performance.now();
      try {
        await deposit(node)(index);
        acknowledgedAt.push(performance.now());
        latencies.record(performance.now() - started);
      } catch (error) {
        const code = error instanceof Refused ? `${error.status} ${error.code}` : error instanceof Error ? error.message.slice(0, 60) : String(error);
        failures.set(code, (failures.get(code) ?? 0) + 1);
        throw error;
      }
    },
    { ratePerSec: rate, durationMs: 15_000 },
  );
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  killedAt = performance.now();
  await leader.kill();
  const result = await load;
  const after = acknowledgedAt.filter((at) => at >= killedAt).sort((a, b) => a - b);
  let windowMs = after.length === 0 ? Number.NaN : after[0]! - killedAt;
  for (let index = 1; index < after.length; index++) windowMs = Math.max(windowMs, after[index]! - after[index - 1]!);
  await leader.start();
  return {
    name: `R3: stream leader (${leader.name}) SIGKILLed under ${rate}/s`,
    opsPerSec: round(result.opsPerSec, 0),
    ...latencies.summary(),
    unavailableMs: round(windowMs, 0),
    slowestMs: round(latencies.percentile(100), 0),
    failures: Object.fromEntries(failures),
  };
}

export async function measureReplicas(seconds: number): Promise<ResultRow[]> {
  const nats = await startNatsCluster(3);
  const nodes: NodeProcess[] = [];
  try {
    const r1 = await startReplicaNode(nats, 1);
    nodes.push(r1);
    const r3 = await startReplicaNode(nats, 3);
    nodes.push(r3);
    const measured = { r1: { ops: 0, failures: 0, latencies: new Latencies() }, r3: { ops: 0, failures: 0, latencies: new Latencies() } };
    const halfMs = (seconds * 1_000) / 2;
    for (const [label, node] of [['r1', r1], ['r3', r3], ['r1', r1], ['r3', r3]] as const) {
      const sample = measured[label];
      const result = await closedLoop(
        async (index) => {
          const started = performance.now();
          await deposit(node)(index);
          sample.latencies.record(performance.now() - started);
        },
        { inFlight: 64, warmupMs: 1_000, durationMs: halfMs },
      );
      sample.ops += result.ops;
      sample.failures += result.failures;
    }
    const row = (label: 'r1' | 'r3', name: string): ResultRow => ({ name, opsPerSec: round(measured[label].ops / seconds, 0), ...measured[label].latencies.summary(), failures: measured[label].failures });
    const one = row('r1', '1 node, R1 stream and buckets: deposits, closed loop (64 in flight)');
    const three = row('r3', '1 node, R3 stream and buckets (3 nats-servers): same load');
    three.ratioToR1 = round(three.opsPerSec / one.opsPerSec, 2);
    const loss = await leaderLoss(nats, r3, Math.max(20, Math.round(three.opsPerSec / 4)));
    return [one, three, loss];
  } finally {
    for (const node of nodes) {
      node.signal('SIGKILL');
      await node.exited;
      node.removeDir();
    }
    await nats.stop();
  }
}
