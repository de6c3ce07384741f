/**
 * The `shardlog` command: `start` serves a node, `events` prints a stream, `reshard` changes
 * the shard count of a data dir, `projections` and `dlq` operate a running node's read models. Every flag of
 * `start` also reads SHARDLOG_<NAME> (and NATS_URL for --nats).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { Presets, SingleBar } from 'cli-progress';
import closeWithGrace from 'close-with-grace';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { clusterReport, loadApp, readStreamEvents, reshardDataDir, ShardlogError, type DeadLetter, type ProjectionStatus } from '../runtime/index.ts';
import { adminCall } from './admin-client.ts';
import { loadTokensFile, parseTokens, type TokenEntry } from './auth.ts';
import { startNode } from './node.ts';

const exampleApp = new URL('../actors/app.ts', import.meta.url).href;

function integer(min: number, max: number) {
  return (raw: string): number => {
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return Number(raw);
  };
}

function natsPrefix(raw: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(raw)) throw new InvalidArgumentError('expected 1 to 64 letters, digits, _ or - (one NATS subject token)');
  return raw;
}

function appUrl(module: string | undefined): string {
  if (module === undefined) return exampleApp;
  return /^[a-z]+:/i.test(module) && !/^[a-z]:\\/i.test(module) ? module : pathToFileURL(resolve(module)).href;
}

function tokensFrom(file: string | undefined): TokenEntry[] {
  if (file !== undefined) return loadTokensFile(file);
  const inline = process.env.SHARDLOG_TOKENS;
  return inline === undefined || inline === '' ? [] : parseTokens(inline, 'SHARDLOG_TOKENS');
}

function fail(message: string, exitCode = 1): never {
  process.stderr.write(`shardlog: ${message}\n`);
  process.exit(exitCode);
}

interface StartOptions {
  port: number;
  host: string;
  data: string;
  partitions?: number;
  shards?: number;
  durability: 'fsync' | 'relaxed';
  nats?: string;
  nodeId?: string;
  app?: string;
  tokens?: string;
  insecure: boolean;
  bodyLimit: number;
  logLevel: string;
  viewWaitMs: number;
  natsPrefix: string;
}

// `shardlog … | head` closes the pipe early: that is the reader being done, not a failure.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const program = new Command('shardlog').description('Event-sourcing actor runtime: shards, SQLite logs, HTTP edge').showHelpAfterError();

program
  .command('start')
  .description('serve a node: the runtime on --data and the HTTP gateway on --host:--port')
  .addOption(new Option('--port <port>', 'HTTP port').env('SHARDLOG_PORT').argParser(integer(0, 65_535)).default(3000))
  .addOption(new Option('--host <host>', 'address to bind (without tokens only loopback is allowed)').env('SHARDLOG_HOST').default('127.0.0.1'))
  .addOption(new Option('--data <dir>', 'data directory').env('SHARDLOG_DATA').default('./data'))
  .addOption(new Option('--partitions <n>', 'partition count P, fixed when the data dir is created (default 64)').env('SHARDLOG_PARTITIONS').argParser(integer(1, 65_536)))
  .addOption(new Option('--shards <n>', 'shard threads T (default cores − 1, then the stored value)').env('SHARDLOG_SHARDS').argParser(integer(1, 1_024)))
  .addOption(new Option('--durability <mode>', 'fsync: every commit fsynced; relaxed: fsync at checkpoints').env('SHARDLOG_DURABILITY').choices(['fsync', 'relaxed']).default('fsync'))
  .addOption(new Option('--nats <url>', 'NATS server for the JetStream bus and clustering').env('SHARDLOG_NATS'))
  .addOption(new Option('--nats-prefix <prefix>', 'subject prefix on NATS: <prefix>.events.<partition> in stream <PREFIX>_EVENTS').env('SHARDLOG_NATS_PREFIX').argParser(natsPrefix).default('shardlog'))
  .addOption(new Option('--node-id <id>', 'this node’s name; with --nats it joins the cluster of that NATS (default: the host name, no cluster)').env('SHARDLOG_NODE_ID'))
  .addOption(new Option('--app <module>', 'module whose default export is the app (default: the example app)').env('SHARDLOG_APP'))
  .addOption(new Option('--tokens <file>', 'JSON file of bearer tokens and scopes; SHARDLOG_TOKENS may hold the same JSON').env('SHARDLOG_TOKENS_FILE'))
  .addOption(new Option('--insecure', 'allow binding beyond loopback with auth off (or SHARDLOG_INSECURE=1)').default(false))
  .addOption(new Option('--body-limit <bytes>', 'largest request body').env('SHARDLOG_BODY_LIMIT').argParser(integer(1_024, 64 * 1024 * 1024)).default(1024 * 1024))
  .addOption(new Option('--view-wait-ms <ms>', 'how long GET /views/…?after= waits for its projection before 504').env('SHARDLOG_VIEW_WAIT_MS').argParser(integer(0, 60_000)).default(2_000))
  .addOption(new Option('--log-level <level>', 'pino level').env('SHARDLOG_LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
  .action(async (options: StartOptions) => {
    const nats = options.nats ?? process.env.NATS_URL;
    try {
      const node = await startNode({
        port: options.port,
        host: options.host,
        dataDir: options.data,
        appModule: appUrl(options.app),
        partitions: options.partitions,
        shards: options.shards,
        durability: options.durability,
        nodeId: options.nodeId ?? hostname(),
        tokens: tokensFrom(options.tokens),
        // Read by hand: commander would take any value of the variable, "false" included, as true.
        insecure: options.insecure || /^(1|true)$/i.test(process.env.SHARDLOG_INSECURE ?? ''),
        bodyLimit: options.bodyLimit,
        logLevel: options.logLevel,
        viewWaitMs: options.viewWaitMs,
        nats: nats === undefined || nats === '' ? undefined : { servers: nats, prefix: options.natsPrefix },
        // A node id given with NATS joins the cluster; NATS alone is a single node on the JetStream bus.
        cluster: options.nodeId !== undefined && nats !== undefined && nats !== '',
      });
      // First SIGTERM/SIGINT: stop accepting, finish in-flight commands, close the logs.
      // A second one, or 30 s without finishing, exits at once.
      closeWithGrace({ delay: 30_000 }, async ({ signal, err }) => {
        if (err !== undefined) node.logger.error({ err }, 'closing after an error');
        else node.logger.info({ signal }, 'closing gracefully');
        await node.leave();
      });
    } catch (error) {
      fail(error instanceof Error ? error.message : String(error));
    }
  });

program
  .command('events')
  .description('print one aggregate’s events as JSON lines (reads the data dir; works while a node serves it)')
  .argument('<aggregate>', 'aggregate type, e.g. account')
  .argument('<id>', 'aggregate id')
  .addOption(new Option('--data <dir>', 'data directory').env('SHARDLOG_DATA').default('./data'))
  .addOption(new Option('--app <module>', 'module whose default export is the app').env('SHARDLOG_APP'))
  .addOption(new Option('--after <version>', 'only events after this version').argParser(integer(0, Number.MAX_SAFE_INTEGER)).default(0))
  .addOption(new Option('--limit <n>', 'at most this many').argParser(integer(1, 1_000_000)).default(1_000_000))
  .action(async (aggregate: string, id: string, options: { data: string; app?: string; after: number; limit: number }) => {
    try {
      const app = await loadApp(appUrl(options.app));
      const events = readStreamEvents(app, options.data, { aggregate, id, after: options.after, limit: options.limit });
      for (const event of events) process.stdout.write(`${JSON.stringify(event)}\n`);
      if (events.length === 0) process.stderr.write(`shardlog: ${aggregate}/${id} has no events${options.after > 0 ? ` after version ${options.after}` : ''}\n`);
    } catch (error) {
      fail(error instanceof ShardlogError || error instanceof Error ? error.message : String(error));
    }
  });

program
  .command('reshard')
  .description('change the shard count of a data dir (offline: no node may be serving it); moves each partition’s rows to its new shard file')
  .addOption(new Option('--data <dir>', 'data directory').env('SHARDLOG_DATA').default('./data'))
  .requiredOption('--shards <n>', 'the new shard count T', integer(1, 1_024))
  .action((options: { data: string; shards: number }) => {
    const bar = new SingleBar({ format: 'resharding [{bar}] {percentage}% | {value}/{total} rows | ETA {eta}s', stream: process.stderr }, Presets.shades_classic);
    let started = false;
    try {
      const result = reshardDataDir(options.data, options.shards, ({ copiedRows, totalRows }) => {
        if (!started) bar.start(totalRows, 0);
        started = true;
        bar.update(copiedRows);
      });
      if (started) bar.stop();
      process.stdout.write(result.from === result.to ? `already ${result.to} shards: nothing to do\n` : `resharded ${options.data}: ${result.from} → ${result.to} shards, ${result.rows} rows moved\n`);
    } catch (error) {
      if (started) bar.stop();
      fail(error instanceof Error ? error.message : String(error));
    }
  });

const urlOption = () => new Option('--url <url>', 'a running node’s HTTP address').env('SHARDLOG_URL').default('http://127.0.0.1:3000');
const tokenOption = () => new Option('--token <token>', 'bearer token with the admin scope').env('SHARDLOG_TOKEN');
type AdminOptions = { url: string; token?: string };

async function admin<T>(options: AdminOptions, method: 'GET' | 'POST', path: string): Promise<T> {
  try {
    return await adminCall<T>(options, method, path);
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
}

function printStatus(status: ProjectionStatus): void {
  const halted = status.halted === null ? '' : ` HALTED at ${status.halted.partition}:${status.halted.seq} (dead letter ${status.halted.deadLetterId}: ${status.halted.error})`;
  process.stdout.write(
    `${status.name} v${status.version}: ${status.state}, checkpoint ${status.checkpoint}/${status.head}, lag ${status.lagEvents} events ${status.lagMs} ms, dead letters ${status.deadLetters}${halted}\n`,
  );
}

const projections = program.command('projections').description('read models on a running node: list, status, rebuild');
projections
  .command('list')
  .description('every projection with its version and state')
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (options: AdminOptions) => {
    const { projections: all } = await admin<{ projections: ProjectionStatus[] }>(options, 'GET', '/admin/projections');
    for (const status of all) process.stdout.write(`${status.name}\tv${status.version}\t${status.state}\n`);
  });
projections
  .command('status')
  .description('checkpoint, lag in events and milliseconds, dead letters (of one projection, or all)')
  .argument('[name]', 'projection name')
  .addOption(urlOption())
  .addOption(tokenOption())
  .option('--json', 'print JSON')
  .action(async (name: string | undefined, options: AdminOptions & { json?: boolean }) => {
    const all = name === undefined ? (await admin<{ projections: ProjectionStatus[] }>(options, 'GET', '/admin/projections')).projections : [await admin<ProjectionStatus>(options, 'GET', `/admin/projections/${encodeURIComponent(name)}`)];
    if (options.json === true) process.stdout.write(`${JSON.stringify(name === undefined ? all : all[0], null, 2)}\n`);
    else for (const status of all) printStatus(status);
  });
projections
  .command('rebuild')
  .description('build the projection again from position 0 beside the serving one, then switch reads over to it')
  .argument('<name>', 'projection name')
  .addOption(urlOption())
  .addOption(tokenOption())
  .action(async (name: string, options: AdminOptions) => {
    const path = `/admin/projections/${encodeURIComponent(name)}`;
    const started = Date.now();
    await admin(options, 'POST', `${path}/rebuild`);
    const bar = new SingleBar({ format: `rebuilding ${name} [{bar}] {percentage}% | {value}/{total} events | {rate} events/s | ETA {eta}s`, stream: process.stderr }, Presets.shades_classic);
    bar.start(1, 0, { rate: 0 });
    for (;;) {
      const status = await admin<ProjectionStatus>(options, 'GET', path);
      if (status.rebuild === null) {
        bar.update(bar.getTotal());
        bar.stop();
        const last = status.lastRebuild;
        if (last === null || Date.parse(last.finishedAt) < started - 1_000) fail(`the rebuild of ${name} stopped without finishing (was the node restarted?)`);
        process.stdout.write(`rebuilt ${name}: ${last.events} events in ${last.seconds.toFixed(1)} s; reads now use the new build\n`);
        return;
      }
      if (status.rebuild.halted !== null) {
        bar.stop();
        fail(`the rebuild of ${name} halted on ${status.rebuild.halted.partition}:${status.rebuild.halted.seq}: ${status.rebuild.halted.error}`);
      }
      bar.setTotal(Math.max(1, status.rebuild.total));
      bar.update(status.rebuild.done, { rate: status.rebuild.eventsPerSecond });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });

const dlq = program.command('dlq').description('dead letters: events a projection could not apply');
dlq
  .command('list')
  .argument('<projection>', 'projection name')
  .addOption(urlOption())
  .addOption(tokenOption())
  .option('--limit <n>', 'at most this many', integer(1, 10_000), 100)
  .action(async (projection: string, options: AdminOptions & { limit: number }) => {
    const { items } = await admin<{ items: DeadLetter[] }>(options, 'GET', `/admin/projections/${encodeURIComponent(projection)}/dlq?limit=${options.limit}`);
    for (const item of items) process.stdout.write(`${JSON.stringify(item)}\n`);
    if (items.length === 0) process.stderr.write(`shardlog: ${projection} has no dead letters\n`);
  });
for (const action of ['retry', 'skip'] as const) {
  dlq
    .command(action)
    .description(action === 'retry' ? 'apply a parked event again with the current code (resumes a halted projection)' : 'drop a parked event without applying it (resumes a halted projection past it)')
    .argument('<projection>', 'projection name')
    .argument('<id>', 'dead letter id (from dlq list)', integer(1, Number.MAX_SAFE_INTEGER))
    .addOption(urlOption())
    .addOption(tokenOption())
    .action(async (projection: string, id: number, options: AdminOptions) => {
      await admin(options, 'POST', `/admin/projections/${encodeURIComponent(projection)}/dlq/${id}/${action}`);
      process.stdout.write(`${action === 'retry' ? 'applied' : 'skipped'} dead letter ${id} of ${projection}\n`);
    });
}

const cluster = program.command('cluster').description('the nodes sharing partitions over NATS');
cluster
  .command('status')
  .description('nodes, leader, partitions with their owners and epochs, and each node’s unpublished events')
  .addOption(new Option('--nats <url>', 'the cluster’s NATS server').env('SHARDLOG_NATS'))
  .addOption(new Option('--nats-prefix <prefix>', 'the cluster’s subject prefix').env('SHARDLOG_NATS_PREFIX').argParser(natsPrefix).default('shardlog'))
  .option('--json', 'print JSON')
  .action(async (options: { nats?: string; natsPrefix: string; json?: boolean }) => {
    const servers = options.nats ?? process.env.NATS_URL;
    if (servers === undefined || servers === '') fail('cluster status needs --nats <url> (or NATS_URL)', 2);
    let report;
    try {
      report = await clusterReport({ servers, prefix: options.natsPrefix });
    } catch (error) {
      fail(`cannot read the cluster from ${servers}: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (report === undefined) fail(`no cluster with prefix "${options.natsPrefix}" on ${servers} (start a node with --nats and --node-id to create one)`);
    if (options.json === true) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return;
    }
    process.stdout.write(`partitions: ${report.partitions}   leader: ${report.leader ?? '(none)'}\n\nnode\tlast heartbeat\tstate\towned\tunpublished events\n`);
    for (const node of report.nodes) {
      process.stdout.write(`${node.nodeId}\t${node.lastHeartbeatMsAgo} ms ago\t${node.draining ? 'leaving' : 'serving'}\t${node.owned}\t${node.lagEvents}\n`);
    }
    process.stdout.write('\npartition\towner\tepoch\tmoving to\n');
    for (const row of report.assignments) process.stdout.write(`${row.partition}\t${row.owner}\t${row.epoch}\t${row.target ?? ''}\n`);
    const unassigned = report.partitions - report.assignments.length;
    if (unassigned > 0) process.stdout.write(`(${unassigned} partitions not assigned yet)\n`);
  });

await program.parseAsync(process.argv);
