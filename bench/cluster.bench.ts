/**
 * `npm run bench -- cluster`: does one more node add throughput? Shardlog nodes run as separate
 * processes, each (as root) in a CPU cgroup of its own capped at BENCH_NODE_CPU of a core
 * (default 0.35), as if each were a small machine; nats-server and this client are uncapped.
 * 64 partitions, one shard thread per node, fsync, deposits over 500 accounts, 32 in flight.
 * - A standalone node (no NATS), then fresh clusters of 1, 2 and 3 nodes, each on its own
 *   nats-server: acknowledged commands/s, CPU per acknowledged command (all nodes +
 *   nats-server, from /proc/<pid>/stat) and idle CPU (nothing sent, 10 s after 30 s of quiet). Two clients: one sends
 *   every command to the next node in turn (about (n−1)/n are forwarded), the other follows
 *   the owner hint (GET /cluster/partitions) and sends each command to its partition's owner.
 * - On the 3-node cluster: what a forwarded command adds (one at a time), the NATS limit of
 *   this machine, and one graceful leave under load.
 * Knobs: BENCH_SECONDS (per measured point, default 8); BENCH_NODE_CPU (fraction of a core per
 * node, 0 = uncapped); BENCH_NODE_LOG=<pino level> writes each node's log to
 * bench-cluster-<node>.log in the working directory.
 */
import { writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { postJson } from './support/post-json.ts';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { clusterReport, partitionOf } from '../runtime/index.ts';
import { startNatsServer, type NatsServer } from '../test/support/nats-server.ts';
import { startNodeProcess, type NodeProcess } from '../test/support/node-process.ts';
import { measureReplicas } from './cluster-replicas.ts';
import { cpuCap, type CpuCap } from './support/cpu-cap.ts';
import { Latencies, round } from './support/latency.ts';
import { closedLoop, openLoop } from './support/load.ts';
import { cpuMeter } from './support/process-cpu.ts';
import { envNumber, report, type ResultRow } from './support/results.ts';

const accounts = 500;
const partitions = 64;
const inFlight = 32;
const durationMs = envNumber('BENCH_SECONDS', 8) * 1_000;
const idleMs = 10_000;
/** V8 runs clean-up collections for tens of seconds after start-up and load: idle is measured after this much quiet. */
const idleSettleMs = 30_000;

function nodeCpuFraction(): number {
  const raw = process.env.BENCH_NODE_CPU ?? '0.35';
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 64) throw new Error(`BENCH_NODE_CPU must be a fraction of a core (0 = uncapped), got "${raw}"`);
  return value;
}

// node:http with keep-alive, not fetch: fetch took most of a core for the client alone on this 2-core machine.
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

const post = (url: string, path: string, body: unknown) => postJson(agent, url, path, body);

const accountOf = (index: number) => `acc-${(index * 7919) % accounts}`;

/** Each command to the next node in turn, as a plain round-robin load balancer does. */
function roundRobin(nodes: NodeProcess[]) {
  return (index: number) => post(nodes[index % nodes.length]!.url, `/commands/account/${accountOf(index)}/deposit`, { amount: 1 });
}

interface OwnerTable {
  owners: { partition: number; nodeId: string; url: string }[];
}

/** Each command straight to its partition's owner, from the owner table any node serves. */
async function ownerRouted(nodes: NodeProcess[]) {
  const response = await fetch(`${nodes[0]!.url}/cluster/partitions`);
  if (!response.ok) throw new Error(`GET /cluster/partitions: ${response.status} ${await response.text()}`);
  const table = (await response.json()) as OwnerTable;
  const urlOf = new Map(table.owners.map((row) => [row.partition, row.url]));
  return (index: number) => {
    const id = accountOf(index);
    const url = urlOf.get(partitionOf(`account/${id}`, partitions)) ?? nodes[0]!.url;
    return post(url, `/commands/account/${id}/deposit`, { amount: 1 });
  };
}

/** Until the nodes serve every partition between them, no handoff under way; returns how long it took. */
async function settled(nats: NatsServer, nodes: NodeProcess[], timeoutMs = 120_000): Promise<number> {
  const started = Date.now();
  const names = new Set(nodes.map((node) => node.nodeId));
  for (;;) {
    const report = await clusterReport({ servers: nats.url, prefix: 'shardlog' });
    const served = await Promise.all(
      nodes.map(async (node) => ((await (await fetch(`${node.url}/readyz`)).json()) as { cluster: { owned: number; acquiring: number; releasing: number } }).cluster),
    );
    const owned = served.reduce((sum, state) => sum + state.owned, 0);
    const moving = served.some((state) => state.acquiring + state.releasing > 0);
    if (report !== undefined && owned === partitions && !moving && report.assignments.every((row) => names.has(row.owner) && row.target === null)) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error('cluster did not settle');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Closed loop at `inFlight`, measured over a window after a warm-up: the commands acknowledged
 * within the window and the CPU the given processes used in that same window.
 */
async function measured(operation: (index: number) => Promise<unknown>, pids: number[]) {
  const latencies = new Latencies();
  let next = 0;
  let failures = 0;
  let acknowledged = 0;
  let window: 'warm-up' | 'measuring' | 'done' = 'warm-up';
  let cpuUsed: () => number = () => 0;
  let windowStart = 0;
  let result = { cpuMicros: 0, seconds: 0 };
  const timers = [
    setTimeout(() => {
      cpuUsed = cpuMeter(pids);
      windowStart = performance.now();
      window = 'measuring';
    }, 2_000),
    setTimeout(() => {
      result = { cpuMicros: cpuUsed(), seconds: (performance.now() - windowStart) / 1_000 };
      window = 'done';
    }, 2_000 + durationMs),
  ];
  const worker = async () => {
    while (window !== 'done') {
      const started = performance.now();
      try {
        await operation(next++);
        if (window === 'measuring' && started >= windowStart) {
          latencies.record(performance.now() - started);
          acknowledged += 1;
        }
      } catch {
        if (window === 'measuring') failures += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  for (const timer of timers) clearTimeout(timer);
  return {
    opsPerSec: round(acknowledged / result.seconds, 0),
    ...latencies.summary(),
    cpuPerCommandUs: round(result.cpuMicros / Math.max(acknowledged, 1), 0),
    cpuCores: round(result.cpuMicros / 1e6 / result.seconds, 2),
    failures,
  };
}

/** The CPU used over a few seconds with nothing sent, as a percentage of one core: all processes, and the busiest node alone. */
async function idleCpu(nodePids: number[], natsPid: number | undefined): Promise<{ total: number; busiestNode: number }> {
  const perNode = nodePids.map((pid) => cpuMeter([pid]));
  const nats = cpuMeter(natsPid === undefined ? [] : [natsPid]);
  await new Promise((resolve) => setTimeout(resolve, idleMs));
  const percent = (micros: number) => round((micros / 1e3 / idleMs) * 100, 2);
  const nodes = perNode.map((used) => used());
  return { total: percent(nodes.reduce((sum, used) => sum + used, 0) + nats()), busiestNode: percent(Math.max(...nodes)) };
}

interface Deployment {
  label: string;
  nats: NatsServer | undefined;
  nodes: NodeProcess[];
  pids: () => number[];
  stopped: boolean;
}

async function deploy(size: number, clustered: boolean, cap: CpuCap, all: NodeProcess[]): Promise<Deployment> {
  const nats = clustered ? await startNatsServer() : undefined;
  const nodes: NodeProcess[] = [];
  const common = ['--partitions', String(partitions), '--shards', '1', '--log-level', process.env.BENCH_NODE_LOG ?? 'warn'];
  for (let index = 1; index <= size; index++) {
    const nodeId = clustered ? `n${index}` : 'standalone';
    const node = await startNodeProcess(nodeId, nats === undefined ? common : ['--nats', nats.url, ...common], { readyWithinMs: 120_000 });
    nodes.push(node);
    all.push(node);
    cap.apply(`${clustered ? size : 's'}-${nodeId}`, node.process.pid!);
  }
  if (nats !== undefined) await settled(nats, nodes);
  const label = clustered ? `${size} node${size === 1 ? '' : 's'}` : '1 node, standalone (no NATS)';
  await Promise.all(Array.from({ length: accounts }, (_, index) => post(nodes[index % nodes.length]!.url, `/commands/account/acc-${index}/open`, { owner: `owner-${index % 50}` })));
  const pids = () => [...nodes.map((node) => node.process.pid!), ...(nats?.pid() === undefined ? [] : [nats.pid()!])];
  return { label, nats, nodes, pids, stopped: false };
}

interface ScalePoint {
  label: string;
  nodes: number;
  idleCpuPercent: number;
  idleBusiestNodePercent: number;
  roundRobin: Awaited<ReturnType<typeof measured>>;
  ownerRouted: Awaited<ReturnType<typeof measured>> | undefined;
}

async function scalePoint(deployment: Deployment): Promise<ScalePoint> {
  const { nodes, pids } = deployment;
  // Let start-up work (catch-up, first checkpoints, V8's clean-up collections) finish before measuring the idle node.
  await new Promise((resolve) => setTimeout(resolve, idleSettleMs));
  const idle = await idleCpu(nodes.map((node) => node.process.pid!), deployment.nats?.pid());
  const roundRobinResult = await measured(roundRobin(nodes), pids());
  const routed = deployment.nats !== undefined && nodes.length > 1 ? await measured(await ownerRouted(nodes), pids()) : undefined;
  const best = routed ?? roundRobinResult;
  console.log(`${deployment.label}: ${best.opsPerSec}/s, ${best.cpuPerCommandUs} µs CPU per command, idle ${idle.total}% of a core (busiest node ${idle.busiestNode}%)`);
  return { label: deployment.label, nodes: nodes.length, idleCpuPercent: idle.total, idleBusiestNodePercent: idle.busiestNode, roundRobin: roundRobinResult, ownerRouted: routed };
}

/** One command at a time to `node`, for accounts whose partition it owns and for accounts another node owns. */
async function forwardingCost(nats: NatsServer, node: NodeProcess): Promise<ResultRow[]> {
  const report = (await clusterReport({ servers: nats.url, prefix: 'shardlog' }))!;
  const owner = new Map(report.assignments.map((row) => [row.partition, row.owner]));
  const ids = Array.from({ length: accounts }, (_, index) => `acc-${index}`);
  const local = ids.filter((id) => owner.get(partitionOf(`account/${id}`, partitions)) === node.nodeId);
  const remote = ids.filter((id) => owner.get(partitionOf(`account/${id}`, partitions)) !== node.nodeId);
  // Interleaved, one at a time, so the machine's noise falls on both alike.
  const latencies = { local: new Latencies(), forwarded: new Latencies() };
  const result = await closedLoop(
    async (index) => {
      const pool = index % 2 === 0 ? local : remote;
      const started = performance.now();
      await post(node.url, `/commands/account/${pool[(index >> 1) % pool.length]}/deposit`, { amount: 1 });
      (index % 2 === 0 ? latencies.local : latencies.forwarded).record(performance.now() - started);
    },
    { inFlight: 1, warmupMs: 1_000, durationMs },
  );
  const rate = round(result.opsPerSec / 2, 0);
  return [
    { name: '3 nodes: one at a time, partition owned by the receiving node', opsPerSec: rate, ...latencies.local.summary() },
    { name: '3 nodes: one at a time, forwarded to the owner over NATS', opsPerSec: rate, ...latencies.forwarded.summary() },
  ];
}

/**
 * The NATS limit of this machine: 64 publishes in flight over 64 subjects, each waiting for its
 * PubAck (as the relay's are), with message ids and a ~200-byte body like one deposit's batch.
 */
async function rawJetStream(nats: NatsServer): Promise<ResultRow> {
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'RAW_LIMIT', subjects: ['raw.*'], storage: 'file' });
    const js = jetstream(nc);
    const body = new Uint8Array(200).fill(7);
    // One publish in flight per subject, 64 subjects: the shape of the relay's traffic.
    const perSubject = await closedLoop(
      async (index) => {
        await js.publish(`raw.${index % partitions}`, body, { msgID: `p-${index}` });
      },
      { inFlight: partitions, warmupMs: 1_000, durationMs: Math.max(3_000, durationMs / 2) },
    );
    await jsm.streams.delete('RAW_LIMIT');
    return { name: 'raw JetStream publish, 64 in flight, PubAck each (NATS limit)', opsPerSec: round(perSubject.opsPerSec, 0), ...perSubject.latencies.summary(), failures: perSubject.failures };
  } finally {
    await nc.close();
  }
}

/**
 * One graceful leave under load: clients send to n1 and n2 (as a load balancer does once n3
 * drains) at half the three-node maximum; n3 gets SIGTERM and hands its partitions over.
 */
async function leaveUnderLoad(nats: NatsServer, [n1, n2, n3]: NodeProcess[], threeNodeRate: number) {
  const rate = Math.max(20, Math.round(threeNodeRate / 2));
  const steady = await openLoop(roundRobin([n1!, n2!]), { ratePerSec: rate, durationMs: 5_000 });
  const threshold = Math.max(steady.latencies.percentile(99), 1);
  const moved = (await clusterReport({ servers: nats.url, prefix: 'shardlog' }))!.assignments.filter((row) => row.owner === 'n3').length;
  const samples: { startedAt: number; ms: number }[] = [];
  const load = openLoop(
    async (index) => {
      const startedAt = performance.now();
      await roundRobin([n1!, n2!])(index);
      samples.push({ startedAt, ms: performance.now() - startedAt });
    },
    { ratePerSec: rate, durationMs: Math.max(12_000, durationMs) },
  );
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const leftAt = performance.now();
  n3!.signal('SIGTERM');
  await settled(nats, [n1!, n2!]);
  const settledAt = performance.now();
  await n3!.exited;
  const underLeave = await load;
  const window = new Latencies();
  let delayed = 0;
  for (const sample of samples) {
    if (sample.startedAt < leftAt || sample.startedAt > settledAt) continue;
    window.record(sample.ms);
    if (sample.ms > threshold) delayed++;
  }
  const rows: ResultRow[] = [
    { name: `2 of 3 nodes take the load at ${rate}/s`, opsPerSec: round(steady.opsPerSec, 0), ...steady.latencies.summary() },
    { name: `same load, sent while n3 leaves (${moved} partitions move)`, opsPerSec: round(underLeave.opsPerSec, 0), ...window.summary(), failures: underLeave.failures },
  ];
  const handoff = {
    kind: 'graceful leave (SIGTERM) under load',
    partitionsMoved: moved,
    signalToSettledMs: round(settledAt - leftAt, 0),
    steadyP99Ms: round(threshold, 3),
    commandsSentWhileMoving: window.count,
    slowerThanSteadyP99: delayed,
    p99MsWhileMoving: round(window.percentile(99), 1),
    maxMsWhileMoving: round(window.percentile(100), 1),
    failures: underLeave.failures,
  };
  return { rows, handoff };
}

async function stopDeployment(deployment: Deployment): Promise<void> {
  if (deployment.stopped) return;
  deployment.stopped = true;
  for (const node of deployment.nodes) {
    if (process.env.BENCH_NODE_LOG !== undefined) writeFileSync(`bench-cluster-${deployment.nodes.length}-${node.nodeId}.log`, node.output());
    node.signal('SIGKILL');
    await node.exited;
    node.removeDir();
  }
  await deployment.nats?.stop();
}

const ratio = (value: number, base: number) => round(value / base, 2);

export async function runCluster(): Promise<void> {
  const cap = cpuCap(nodeCpuFraction());
  if (cap.description.startsWith('uncapped')) console.log(`cluster bench: nodes run ${cap.description}; figures then show the cost of the machinery on shared cores, not what more machines add`);
  const all: NodeProcess[] = [];
  const points: ScalePoint[] = [];
  const rows: ResultRow[] = [];
  try {
    for (const [size, clustered] of [[1, false], [1, true], [2, true]] as const) {
      const deployment = await deploy(size, clustered, cap, all);
      try {
        points.push(await scalePoint(deployment));
      } finally {
        await stopDeployment(deployment);
      }
    }
    const three = await deploy(3, true, cap, all);
    try {
      const point = await scalePoint(three);
      points.push(point);
      rows.push(...(await forwardingCost(three.nats!, three.nodes[0]!)));
      rows.push(await rawJetStream(three.nats!));
      const leave = await leaveUnderLoad(three.nats!, three.nodes, point.ownerRouted?.opsPerSec ?? point.roundRobin.opsPerSec);
      rows.push(...leave.rows);
      const scaleRows = points.flatMap((point) => [
        { name: `${point.label}: every command to the next node`, ...point.roundRobin, idleCpuPercent: point.idleCpuPercent },
        ...(point.ownerRouted === undefined ? [] : [{ name: `${point.label}: each command to its owner (owner hint)`, ...point.ownerRouted, idleCpuPercent: point.idleCpuPercent }]),
      ]);
      const [standalone, one, two, threeNodes] = points as [ScalePoint, ScalePoint, ScalePoint, ScalePoint];
      const best = (point: ScalePoint) => point.ownerRouted ?? point.roundRobin;
      // The 3-node cluster stops before the replica runs, which start a 3-server NATS cluster of their own.
      await stopDeployment(three);
      const replicaRows = await measureReplicas(durationMs / 1_000);
      report('cluster', [...scaleRows, ...rows, ...replicaRows], {
        setup: {
          partitions,
          shardsPerNode: 1,
          durability: 'fsync',
          accounts,
          inFlight,
          secondsPerPoint: durationMs / 1_000,
          cpuCap: cap.description,
          nats: 'nats-server 2.9 on loopback, file storage, one per cluster size, uncapped',
          client: 'this process, node:http keep-alive over loopback, uncapped',
          cpuPerCommand: 'user+system CPU of every node and nats-server in the measured window ÷ commands acknowledged in it',
        },
        scaling: {
          standalone: { opsPerSec: standalone.roundRobin.opsPerSec, cpuPerCommandUs: standalone.roundRobin.cpuPerCommandUs, idleCpuPercent: standalone.idleCpuPercent },
          idleCpu: 'percent of one core over 10 s with nothing sent, after 30 s of quiet: idleCpuPercent all nodes + nats-server, idleBusiestNodePercent the busiest node alone',
          nodes: [one, two, threeNodes].map((point) => ({
            nodes: point.nodes,
            roundRobin: { opsPerSec: point.roundRobin.opsPerSec, cpuPerCommandUs: point.roundRobin.cpuPerCommandUs },
            ownerRouted: point.ownerRouted === undefined ? null : { opsPerSec: point.ownerRouted.opsPerSec, cpuPerCommandUs: point.ownerRouted.cpuPerCommandUs },
            idleCpuPercent: point.idleCpuPercent,
            idleBusiestNodePercent: point.idleBusiestNodePercent,
          })),
          targets: {
            twoOverOne: { roundRobin: ratio(two.roundRobin.opsPerSec, one.roundRobin.opsPerSec), ownerRouted: ratio(best(two).opsPerSec, one.roundRobin.opsPerSec), target: 1.7 },
            threeOverOne: { roundRobin: ratio(threeNodes.roundRobin.opsPerSec, one.roundRobin.opsPerSec), ownerRouted: ratio(best(threeNodes).opsPerSec, one.roundRobin.opsPerSec), target: 2.4 },
            cpuPerCommandThreeOverOne: { roundRobin: ratio(threeNodes.roundRobin.cpuPerCommandUs, one.roundRobin.cpuPerCommandUs), ownerRouted: ratio(best(threeNodes).cpuPerCommandUs, one.roundRobin.cpuPerCommandUs), target: 1.3 },
            clusterNodeOverStandaloneCpuPerCommand: { value: ratio(one.roundRobin.cpuPerCommandUs, standalone.roundRobin.cpuPerCommandUs), target: 1.5 },
            idleNodeCpuPercentMax: { value: Math.max(...points.map((point) => point.idleBusiestNodePercent)), target: 1 },
          },
        },
        forwarding: { localP50Ms: rows[0]!.p50Ms, forwardedP50Ms: rows[1]!.p50Ms, addedP50Ms: round(rows[1]!.p50Ms - rows[0]!.p50Ms, 3), addedP99Ms: round(rows[1]!.p99Ms - rows[0]!.p99Ms, 3) },
        natsLimitPublishesPerSec: rows[2]!.opsPerSec,
        handoff: leave.handoff,
        replicas: { r1OpsPerSec: replicaRows[0]!.opsPerSec, r3OpsPerSec: replicaRows[1]!.opsPerSec, r3OverR1: replicaRows[1]!.ratioToR1, streamLeaderLoss: replicaRows[2] },
      });
    } finally {
      await stopDeployment(three);
    }
  } finally {
    for (const node of all) if (node.process.exitCode === null && node.process.signalCode === null) node.signal('SIGKILL');
    cap.release();
  }
}
