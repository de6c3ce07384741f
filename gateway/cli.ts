/**
 * The `shardlog` command: `start` serves a node, `events` prints a stream, `reshard` changes
 * the shard count of a data dir. Every flag of
 * `start` also reads SHARDLOG_<NAME> (and NATS_URL for --nats).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { Presets, SingleBar } from 'cli-progress';
import closeWithGrace from 'close-with-grace';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadApp, readStreamEvents, reshardDataDir, ShardlogError } from '../runtime/index.ts';
import { loadTokensFile, parseTokens, type TokenEntry } from './auth.ts';
import { startNode } from './node.ts';

const exampleApp = new URL('../actors/app.ts', import.meta.url).href;

function integer(min: number, max: number) {
  return (raw: string): number => {
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return Number(raw);
  };
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
}

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
  .addOption(new Option('--node-id <id>', 'this node’s name in a cluster (default: the host name)').env('SHARDLOG_NODE_ID'))
  .addOption(new Option('--app <module>', 'module whose default export is the app (default: the example app)').env('SHARDLOG_APP'))
  .addOption(new Option('--tokens <file>', 'JSON file of bearer tokens and scopes; SHARDLOG_TOKENS may hold the same JSON').env('SHARDLOG_TOKENS_FILE'))
  .addOption(new Option('--insecure', 'allow binding beyond loopback with auth off (or SHARDLOG_INSECURE=1)').default(false))
  .addOption(new Option('--body-limit <bytes>', 'largest request body').env('SHARDLOG_BODY_LIMIT').argParser(integer(1_024, 64 * 1024 * 1024)).default(1024 * 1024))
  .addOption(new Option('--log-level <level>', 'pino level').env('SHARDLOG_LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
  .action(async (options: StartOptions) => {
    const nats = options.nats ?? process.env.NATS_URL;
    if (nats !== undefined && nats !== '') fail(`--nats ${nats}: the JetStream bus and clustering are not in this build yet; start without --nats (embedded mode)`, 2);
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
      });
      // First SIGTERM/SIGINT: stop accepting, finish in-flight commands, close the logs.
      // A second one, or 30 s without finishing, exits at once.
      closeWithGrace({ delay: 30_000 }, async ({ signal, err }) => {
        if (err !== undefined) node.logger.error({ err }, 'closing after an error');
        else node.logger.info({ signal }, 'closing gracefully');
        await node.close();
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

await program.parseAsync(process.argv);
