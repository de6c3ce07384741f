import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { createRuntime, loadApp, makeError, type Durability, type Runtime, type RuntimeOptions } from '../runtime/index.ts';
import { isLoopback, type TokenEntry } from './auth.ts';
import { Metrics } from './metrics.ts';
import type { EventStreamOptions } from './routes/event-stream.ts';
import { buildGateway } from './server.ts';

export interface NodeConfig {
  port: number;
  host: string;
  dataDir: string;
  /** URL of the app module (default: the example app). */
  appModule: string;
  partitions?: number | undefined;
  shards?: number | undefined;
  durability: Durability;
  nodeId: string;
  tokens: readonly TokenEntry[];
  insecure: boolean;
  bodyLimit: number;
  logLevel: string;
  /** NATS server(s) for the JetStream event bus; embedded bus when absent. */
  nats?: { servers: string; prefix: string; replicas?: number } | undefined;
  /** Join the cluster on `nats` under `nodeId` (the CLI does when --node-id is given with --nats). */
  cluster?: boolean | undefined;
  /** In a cluster: the URL clients reach this node's gateway at (default `http://<host>:<port>`, a wildcard host shown as 127.0.0.1). */
  advertiseUrl?: string | undefined;
  /** `GET /events` tuning (heartbeat, slow-client buffer). */
  eventStream?: EventStreamOptions | undefined;
  /** How long a view read with `?after=` waits for its projection (default 2,000 ms). */
  viewWaitMs?: number | undefined;
  /** Runtime settings with no flag of their own (queue bounds, live actors). */
  tuning?: Pick<RuntimeOptions, 'maxQueuedCommands' | 'maxLiveActors' | 'maxBatchSize' | 'shardMemoryMb' | 'restart'>;
}

export interface RunningNode {
  gateway: FastifyInstance;
  runtime: Runtime;
  logger: Logger;
  /** Stops accepting, lets in-flight commands finish, closes the logs. */
  close(): Promise<void>;
  /** In a cluster: hands this node's partitions to the others first (commands keep flowing), then closes. */
  leave(): Promise<void>;
}

/**
 * Starts one node: the runtime on its data dir and the HTTP gateway in front of it. Without
 * tokens the gateway binds only to loopback, unless `insecure` says otherwise out loud.
 */
export async function startNode(config: NodeConfig): Promise<RunningNode> {
  const logger = pino({ level: config.logLevel, base: { node: config.nodeId } });
  if (config.tokens.length === 0 && !isLoopback(config.host)) {
    if (!config.insecure) {
      throw makeError('SHARDLOG_INVALID_CONFIG', `refusing to serve ${config.host} with auth off: configure tokens (--tokens or SHARDLOG_TOKENS) or pass --insecure`);
    }
    logger.warn({ host: config.host }, 'INSECURE: auth is off and the gateway listens beyond loopback; anyone who can reach it can run every command');
  }
  const advertised = config.advertiseUrl === undefined ? undefined : checkedAdvertiseUrl(config.advertiseUrl);
  const app = await loadApp(config.appModule);
  const metrics = new Metrics();
  const runtime = await createRuntime({
    app,
    dataDir: config.dataDir,
    partitions: config.partitions,
    shards: config.shards,
    durability: config.durability,
    logger,
    onBatch: metrics.onBatch,
    nats: config.nats,
    ...(config.cluster === true ? { cluster: { nodeId: config.nodeId } } : {}),
    ...config.tuning,
  } as RuntimeOptions);
  metrics.watchRelay(() => runtime.busLag());
  metrics.watchWal(() => runtime.walSizes());
  metrics.watchCluster(() => runtime.cluster?.status());
  const gateway = buildGateway({ runtime, metrics, tokens: config.tokens, bodyLimit: config.bodyLimit, logger, viewWaitMs: config.viewWaitMs, eventStream: config.eventStream });
  try {
    await gateway.listen({ port: config.port, host: config.host });
  } catch (error) {
    await runtime.close();
    throw error;
  }
  runtime.cluster?.advertise(advertised ?? defaultAdvertiseUrl(config.host, gateway));
  logger.info(
    { address: gateway.addresses(), dataDir: config.dataDir, partitions: runtime.partitions, shards: runtime.shards, durability: config.durability, auth: config.tokens.length > 0, bus: config.nats === undefined ? 'embedded' : `jetstream ${config.nats.servers}` },
    'shardlog node serving',
  );
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await gateway.close();
      await runtime.close();
      logger.info('shardlog node stopped');
    })());
  return {
    gateway,
    runtime,
    logger,
    close,
    leave: async () => {
      if (runtime.cluster !== undefined && closing === undefined) {
        logger.info('leaving the cluster: handing partitions off');
        await runtime.leaveCluster(20_000);
      }
      await close();
    },
  };
}

function checkedAdvertiseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch (error) {
    throw makeError('SHARDLOG_INVALID_CONFIG', `--advertise-url "${text.slice(0, 200)}" is not a URL`, {}, error);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw makeError('SHARDLOG_INVALID_CONFIG', `--advertise-url must be an http:// or https:// URL, not "${text.slice(0, 200)}"`);
  return url.href.replace(/\/+$/, '');
}

/** `http://<host>:<port>` of the bound gateway; a wildcard address is no place to send a client, so it shows as loopback. */
function defaultAdvertiseUrl(host: string, gateway: FastifyInstance): string {
  const address = gateway.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const shown = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
  return `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}`;
}
