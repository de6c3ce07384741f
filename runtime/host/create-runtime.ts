import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { JetStreamRelay } from '../bus/jetstream-relay.ts';
import { natsServerList } from '../bus/nats-servers.ts';
import { ClusterNode } from '../cluster/cluster-node.ts';
import type { App } from '../define/app.ts';
import { makeError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Durability } from '../protocol.ts';
import type { ClusterConfig, NatsOptions, Runtime, RuntimeOptions } from '../runtime.ts';
import { positiveInteger } from './checked-input.ts';
import { Checkpointer } from './checkpointer.ts';
import { clusterHostOf } from './cluster-host-adapter.ts';
import { CommitFeed } from './commit-feed.ts';
import { shardOf } from '../partitioning.ts';
import { openDataDir } from './data-dir.ts';
import { DataDirLock } from './data-dir-lock.ts';
import { placedViewsOf } from './local-views.ts';
import { NodeRuntime, type NodeRuntimeParts } from './node-runtime.ts';
import { ProjectorHost } from './projector-host.ts';
import { relaySourceOf } from './relay-source.ts';
import { SagaHost } from './saga-host.ts';
import { finishInterruptedReshard } from './reshard.ts';
import { ShardHost, type RestartPolicy } from './shard-host.ts';
import { ShardSet } from './shard-set.ts';

const defaultRestart: RestartPolicy = { maxCrashes: 5, windowMs: 60_000, initialDelayMs: 100, maxDelayMs: 5_000 };
const consoleLogger: Logger = {
  info: (details, message) => console.info(`[shardlog] ${message}`, details),
  warn: (details, message) => console.warn(`[shardlog] ${message}`, details),
  error: (details, message) => console.error(`[shardlog] ${message}`, details),
};
/** One batch per shard at a time: two in flight halved batch sizes and gained nothing measurable (ADR 0003). */
const maxBatchesInFlight = 1;
const checkpointIntervalMs = 50;
/** How long the saga router waits for JetStream to confirm a partition's events before it tries again. */
const sagaConfirmWaitMs = 10_000;

interface NatsConfig {
  servers: string[];
  prefix: string;
  /** Undefined: create with 1, and say nothing of what exists. */
  replicas: number | undefined;
}

/**
 * Starts a runtime: creates or checks the data dir, starts one thread per shard and opens
 * every shard log, then the JetStream relay and the cluster node (with `nats`, `cluster`) and
 * the projector thread (when the app has projections). Rejects, after stopping what it
 * started, if any part cannot start.
 */
export async function createRuntime<A extends App>(options: RuntimeOptions<A>): Promise<Runtime<A>> {
  const durability = options.durability ?? 'fsync';
  if (durability !== 'fsync' && durability !== 'relaxed') {
    throw makeError('SHARDLOG_INVALID_CONFIG', `durability must be "fsync" or "relaxed", got "${String(durability)}"`);
  }
  const nats = options.nats === undefined ? undefined : natsConfigOf(options.nats);
  if (options.cluster !== undefined) checkClusterConfig(options.cluster, nats !== undefined);
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const lock = DataDirLock.acquire(dataDir);
  try {
    return await startRuntime(options, dataDir, durability, nats, lock);
  } catch (error) {
    lock.release();
    throw error;
  }
}

function natsConfigOf(options: NatsOptions): NatsConfig {
  const replicas = options.replicas;
  if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 1 || replicas > 5)) throw makeError('SHARDLOG_INVALID_CONFIG', `nats.replicas must be an integer from 1 to 5, got ${String(options.replicas)}`);
  let servers: string[];
  try {
    servers = natsServerList(options.servers);
  } catch (error) {
    throw makeError('SHARDLOG_INVALID_CONFIG', 'nats.servers names no server', {}, error);
  }
  return { servers, prefix: options.prefix ?? 'shardlog', replicas };
}

function checkClusterConfig(cluster: ClusterConfig, hasNats: boolean): void {
  if (!hasNats) throw makeError('SHARDLOG_INVALID_CONFIG', 'a cluster needs NATS: pass nats (--nats) with cluster (--node-id)');
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(cluster.nodeId)) {
    throw makeError('SHARDLOG_INVALID_CONFIG', `node id "${cluster.nodeId}" must be 1 to 64 letters, digits, ".", "_" or "-"`);
  }
}

async function startRuntime<A extends App>(
  options: RuntimeOptions<A>,
  dataDir: string,
  durability: Durability,
  nats: NatsConfig | undefined,
  lock: DataDirLock,
): Promise<Runtime<A>> {
  finishInterruptedReshard(dataDir);
  const meta = openDataDir(
    dataDir,
    {
      partitions: options.partitions === undefined ? undefined : positiveInteger('partitions', options.partitions, 64),
      shards: options.shards === undefined ? undefined : positiveInteger('shards', options.shards, 1),
    },
    { partitions: 64, shards: Math.max(1, availableParallelism() - 1) },
  );
  const maxLiveActors = positiveInteger('maxLiveActors', options.maxLiveActors, 10_000);
  const maxQueuedCommands = positiveInteger('maxQueuedCommands', options.maxQueuedCommands, 10_000);
  const maxBatchSize = positiveInteger('maxBatchSize', options.maxBatchSize, 1_024);
  const retentionMs = positiveInteger('idempotencyRetentionMs', options.idempotencyRetentionMs, 24 * 60 * 60_000);
  const logger = options.logger ?? consoleLogger;
  const feed = new CommitFeed();
  const hosts = Array.from(
    { length: meta.shards },
    (_, shard) =>
      new ShardHost({
        worker: { shard, shards: meta.shards, partitions: meta.partitions, dataDir, appModule: options.app.module, durability, maxLiveActors, returnEvents: nats !== undefined ? 'all' : options.app.sagas.length > 0 ? 'saga-aggregates' : 'none' },
        maxQueuedCommands,
        maxBatchSize,
        maxBatchesInFlight,
        maxOldGenerationSizeMb: options.shardMemoryMb,
        restart: { ...defaultRestart, ...options.restart },
        logger,
        onBatch: (batch) => {
          options.onBatch?.(batch);
          feed.committed(batch);
          if (batch.heads.length > 0 || batch.sagas !== undefined) parts.sagas?.committed(batch);
        },
      }),
  );
  // Filled in below; the shards' onBatch reads it when a batch arrives.
  const parts = {} as NodeRuntimeParts<A>;
  const opened = await Promise.allSettled(hosts.map((host) => host.open()));
  const failed = opened.find((result) => result.status === 'rejected');
  if (failed !== undefined) {
    await Promise.allSettled(hosts.map((host) => host.close()));
    throw failed.reason;
  }
  const shards = new ShardSet(meta.partitions, hosts);
  const checkpointer = new Checkpointer(
    hosts.map((_, shard) => join(dataDir, 'shards', `${shard}.db`)),
    checkpointIntervalMs,
    logger,
  );
  feed.onCommit((heads) => {
    for (let index = 0; index < heads.length; index += 2) checkpointer.written(shardOf(heads[index]!, meta.shards));
  });
  Object.assign(parts, { app: options.app, shards, feed, checkpointer, lock, retentionMs, logger });
  try {
    for (const [partition, seq] of await shards.heads()) if (seq > feed.localHead(partition)) feed.setLocalHead(partition, seq);
    if (nats !== undefined) {
      const clustered = options.cluster;
      // The relay and the cluster node need each other: ownership is asked of the node once it exists.
      const ownership: { node?: ClusterNode } = {};
      parts.relay = await JetStreamRelay.start({
        servers: nats.servers,
        prefix: nats.prefix,
        replicas: nats.replicas,
        source: relaySourceOf(shards, feed),
        logger,
        ...(clustered === undefined
          ? {}
          : { cluster: { owns: (partition: number) => ownership.node?.owns(partition) ?? false, onFenced: (partition: number) => ownership.node?.fenced(partition) } }),
      });
      if (clustered !== undefined) {
        parts.cluster = ownership.node = await ClusterNode.start({
          nodeId: clustered.nodeId,
          servers: nats.servers,
          prefix: nats.prefix,
          replicas: nats.replicas,
          host: clusterHostOf({
            shards,
            feed,
            relay: parts.relay,
            owns: (partition) => ownership.node?.owns(partition) === true,
            publishWaitMs: clustered.publishWaitMs ?? 10_000,
            ownership: {
              adopted: (partition) => void parts.sagas?.adopted([partition]).catch((error: unknown) => logger.error({ err: error, partition }, 'could not load the saga outboxes of a partition')),
              released: (partition) => parts.sagas?.released(partition),
            },
          }),
          logger,
          ...(clustered.timings === undefined ? {} : { timings: clustered.timings }),
          ...(clustered.moveWaitMs === undefined ? {} : { moveWaitMs: clustered.moveWaitMs }),
          projections: options.app.projections.map((projection) => projection.name),
        });
      }
    }
    if (options.app.projections.length > 0) {
      parts.projectors = await ProjectorHost.start({
        app: options.app,
        dataDir,
        shards: meta.shards,
        partitions: meta.partitions,
        logger,
        subscribe: (listener) => feed.onCommit(listener),
        head: (partition) => feed.head(partition),
        nats: nats === undefined ? undefined : { ...nats, partialLogs: options.cluster !== undefined },
        placed: parts.cluster !== undefined,
      });
      parts.cluster?.attachViews(placedViewsOf(parts.projectors, options.app.projections.map((projection) => projection.name)));
    }
    const runtime = new NodeRuntime(parts);
    if (options.app.sagas.length > 0) {
      const { relay, cluster } = parts;
      parts.sagas = SagaHost.create({
        app: options.app,
        shards,
        owns: (partition) => cluster?.owns(partition) ?? true,
        head: (partition) => feed.localHead(partition),
        confirmed: relay === undefined ? undefined : (partition, seq) => relay.waitPublished(partition, seq, sagaConfirmWaitMs),
        submit: (prepared) => runtime.submit(prepared),
        read: (partition, request) => runtime.readAt(partition, request),
        logger,
      });
      await parts.sagas.start();
    }
    return runtime;
  } catch (error) {
    await new NodeRuntime(parts).close();
    throw error;
  }
}
