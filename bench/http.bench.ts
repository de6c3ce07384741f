/**
 * `npm run bench -- http`: `shardlog start` (bank workload, 1,000 accounts, deposits, fsync)
 * under autocannon in a separate process at 64 and 256 connections, beside a bare Fastify
 * route that parses the same body (the HTTP limit of this machine), measured in this run;
 * then fixed-rate runs at 50% and 80% of the maximum. Knob: BENCH_SECONDS (default 10).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cpuSpent, readCpu, type CpuSpent } from './support/cpu-time.ts';
import { round } from './support/latency.ts';
import { envNumber, report, type ResultRow } from './support/results.ts';

const run = promisify(execFile);
const seconds = envNumber('BENCH_SECONDS', 10);
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; p99_9?: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

interface LoadResult extends AutocannonResult {
  /** The server's CPU over the run, and autocannon's own per request (both on this box's cores). */
  server: CpuSpent | undefined;
  loadGeneratorCpuUsPerRequest: number;
}

async function load(server: ChildProcess, url: string, connections: number, overallRate?: number): Promise<LoadResult> {
  const args = ['--import', 'tsx', here('./support/autocannon-runner.ts'), JSON.stringify({ url, connections, durationSeconds: seconds, overallRate })];
  const before = readCpu(server.pid!);
  const { stdout } = await run(process.execPath, args, { maxBuffer: 64 << 20 });
  const after = readCpu(server.pid!);
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as AutocannonResult & { cpuMs: number };
  const requests = Math.max(1, result.requests.total);
  return { ...result, server: cpuSpent(server.pid!, before, after, requests), loadGeneratorCpuUsPerRequest: Math.round((result.cpuMs * 1_000) / requests) };
}

/** Starts a child process and resolves with the port it reports (`listening <port>` or pino's serving line). */
function startChild(args: string[], portFrom: (line: string) => number | undefined): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let buffer = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      for (const line of buffer.split('\n')) {
        const port = portFrom(line);
        if (port !== undefined) resolve({ child, port });
      }
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

function row(name: string, result: LoadResult): ResultRow {
  return {
    name,
    opsPerSec: round(result.requests.average, 0),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    p999Ms: result.latency.p99_9 ?? Number.NaN,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    ...(result.server === undefined ? {} : { server: result.server }),
    loadGeneratorCpuUsPerRequest: result.loadGeneratorCpuUsPerRequest,
  };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

export async function runHttp(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'shardlog-bench-http-'));
  const rows: ResultRow[] = [];
  const bare = await startChild(['--import', 'tsx', here('./support/bare-fastify.ts')], (line) => {
    const match = /^listening (\d+)/.exec(line);
    return match === null ? undefined : Number(match[1]);
  });
  const node = await startChild([here('../cli/shardlog.mjs'), 'start', '--port', '0', '--data', dataDir, '--durability', 'fsync', '--log-level', 'info'], (line) => {
    if (!line.includes('shardlog node serving')) return undefined;
    const address = (JSON.parse(line) as { address: { port: number; family: string }[] }).address.find((entry) => entry.family === 'IPv4');
    return address?.port;
  });
  try {
    const nodeUrl = `http://127.0.0.1:${node.port}`;
    for (let start = 0; start < 1_000; start += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, offset) =>
          fetch(`${nodeUrl}/commands/account/acc-${start + offset}/open`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"owner":"bench"}' }),
        ),
      );
    }
    const bareUrl = `http://127.0.0.1:${bare.port}`;
    await load(node.child, nodeUrl, 64); // warm-up, not reported
    const results: Record<string, LoadResult> = {};
    for (const connections of [64, 256]) {
      results[`bare-${connections}`] = await load(bare.child, bareUrl, connections);
      results[`node-${connections}`] = await load(node.child, nodeUrl, connections);
      rows.push(row(`raw fastify route, ${connections} connections`, results[`bare-${connections}`]!));
      rows.push(row(`shardlog start (fsync), ${connections} connections`, results[`node-${connections}`]!));
    }
    const maximum = results['node-64']!.requests.average;
    for (const share of [0.5, 0.8]) {
      const rate = Math.max(1, Math.round(maximum * share));
      rows.push(row(`shardlog start (fsync), fixed ${rate}/s (${share * 100}% of max), 64 connections`, await load(node.child, nodeUrl, 64, rate)));
    }
    report('http', rows, {
      ratios: {
        http_vs_raw_fastify: round(results['node-64']!.requests.average / results['bare-64']!.requests.average, 3),
        http_vs_raw_fastify_256: round(results['node-256']!.requests.average / results['bare-256']!.requests.average, 3),
      },
      // Server CPU per request at 64 connections, and the split by thread: the ratio above is largely this one inverted.
      cpu: { shardlog: results['node-64']!.server ?? null, rawFastify: results['bare-64']!.server ?? null },
      notes: 'autocannon 8 in a separate process; fixed-rate runs use autocannon overallRate, whose latency counts from each request’s actual send',
    });
  } finally {
    await stop(node.child);
    await stop(bare.child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
