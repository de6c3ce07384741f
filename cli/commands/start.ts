/** `shardlog start`: serve a node until SIGTERM/SIGINT. Every flag also reads SHARDLOG_<NAME> (and NATS_URL for --nats). */
import { Command, Option } from 'commander';
import closeWithGrace from 'close-with-grace';
import { hostname } from 'node:os';
import type { TokenEntry } from '../../gateway/auth.ts';
import { appOption, appUrl, dataOption, integer, natsPrefixOption, natsReplicasOption, natsServers } from '../options.ts';

interface StartOptions {
  port: number;
  host: string;
  data: string;
  partitions?: number;
  shards?: number;
  durability: 'fsync' | 'relaxed';
  nats?: string;
  nodeId?: string;
  advertiseUrl?: string;
  app?: string;
  tokens?: string;
  insecure: boolean;
  bodyLimit: number;
  logLevel: string;
  viewWaitMs: number;
  natsPrefix: string;
  natsReplicas?: number;
}

async function tokensFrom(file: string | undefined): Promise<TokenEntry[]> {
  const { loadTokensFile, parseTokens } = await import('../../gateway/auth.ts');
  if (file !== undefined) return loadTokensFile(file);
  const inline = process.env.SHARDLOG_TOKENS;
  return inline === undefined || inline === '' ? [] : parseTokens(inline, 'SHARDLOG_TOKENS');
}

export function startCommand(): Command {
  return new Command('start')
    .description('serve a node: the runtime on --data and the HTTP gateway on --host:--port')
    .addOption(new Option('--port <port>', 'HTTP port').env('SHARDLOG_PORT').argParser(integer(0, 65_535)).default(3000))
    .addOption(new Option('--host <host>', 'address to bind (without tokens only loopback is allowed)').env('SHARDLOG_HOST').default('127.0.0.1'))
    .addOption(dataOption())
    .addOption(new Option('--partitions <n>', 'partition count P, fixed when the data dir is created (default 64)').env('SHARDLOG_PARTITIONS').argParser(integer(1, 65_536)))
    .addOption(new Option('--shards <n>', 'shard threads T (default cores − 1, then the stored value)').env('SHARDLOG_SHARDS').argParser(integer(1, 1_024)))
    .addOption(new Option('--durability <mode>', 'fsync: every commit fsynced; relaxed: fsync at checkpoints').env('SHARDLOG_DURABILITY').choices(['fsync', 'relaxed']).default('fsync'))
    .addOption(new Option('--nats <urls>', 'NATS server(s) for the JetStream bus and clustering, comma-separated (or NATS_URL)').env('SHARDLOG_NATS'))
    .addOption(natsPrefixOption('subject prefix on NATS: <prefix>.events.<partition> in stream <PREFIX>_EVENTS'))
    .addOption(natsReplicasOption('replicas of the event stream and KV buckets Shardlog creates (default 1; more than 1 needs a NATS cluster)'))
    .addOption(new Option('--node-id <id>', 'this node’s name; with --nats it joins the cluster of that NATS (default: the host name, no cluster)').env('SHARDLOG_NODE_ID'))
    .addOption(new Option('--advertise-url <url>', 'in a cluster: the URL clients reach this node at, named in Shardlog-Owner (default http://<host>:<port>)').env('SHARDLOG_ADVERTISE_URL'))
    .addOption(appOption())
    .addOption(new Option('--tokens <file>', 'JSON file of bearer tokens and scopes; SHARDLOG_TOKENS may hold the same JSON').env('SHARDLOG_TOKENS_FILE'))
    .addOption(new Option('--insecure', 'allow binding beyond loopback with auth off (or SHARDLOG_INSECURE=1)').default(false))
    .addOption(new Option('--body-limit <bytes>', 'largest request body').env('SHARDLOG_BODY_LIMIT').argParser(integer(1_024, 64 * 1024 * 1024)).default(1024 * 1024))
    .addOption(new Option('--view-wait-ms <ms>', 'how long GET /views/…?after= waits for its projection before 504').env('SHARDLOG_VIEW_WAIT_MS').argParser(integer(0, 60_000)).default(2_000))
    .addOption(new Option('--log-level <level>', 'pino level').env('SHARDLOG_LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .action(async (options: StartOptions) => {
      const nats = natsServers(options.nats);
      // Loaded here, not at the top: the runtime and the HTTP stack cost seconds of start-up that
      // the commands that only call a node's admin routes need not pay.
      const { startNode } = await import('../../gateway/node.ts');
      const node = await startNode({
        port: options.port,
        host: options.host,
        dataDir: options.data,
        appModule: appUrl(options.app),
        partitions: options.partitions,
        shards: options.shards,
        durability: options.durability,
        nodeId: options.nodeId ?? hostname(),
        tokens: await tokensFrom(options.tokens),
        // Read by hand: commander would take any value of the variable, "false" included, as true.
        insecure: options.insecure || /^(1|true)$/i.test(process.env.SHARDLOG_INSECURE ?? ''),
        bodyLimit: options.bodyLimit,
        logLevel: options.logLevel,
        viewWaitMs: options.viewWaitMs,
        nats: nats === undefined ? undefined : { servers: nats, prefix: options.natsPrefix, ...(options.natsReplicas === undefined ? {} : { replicas: options.natsReplicas }) },
        // A node id given with NATS joins the cluster; NATS alone is a single node on the JetStream bus.
        cluster: options.nodeId !== undefined && nats !== undefined,
        advertiseUrl: options.advertiseUrl,
      });
      // First SIGTERM/SIGINT: stop accepting, finish in-flight commands, close the logs.
      // A second one, or 30 s without finishing, exits at once.
      closeWithGrace({ delay: 30_000 }, async ({ signal, err }) => {
        if (err !== undefined) node.logger.error({ err }, 'closing after an error');
        else node.logger.info({ signal }, 'closing gracefully');
        await node.leave();
      });
    });
}
