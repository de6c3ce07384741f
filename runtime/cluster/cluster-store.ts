import { Kvm, type KV, type KvEntry, type KvOptions } from '@nats-io/kv';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { upperPrefixOf } from '../bus/event-message.ts';
import { isStreamNotFound, isWrongLastSequence } from '../bus/nats-errors.ts';
import { placementRefusal, type ReplicaLayout } from '../bus/replicas.ts';
import { makeError } from '../errors.ts';
import type { Assignment } from './assignment-plan.ts';

/** What a node says of itself every heartbeat. */
export interface NodeHeartbeat {
  nodeId: string;
  /** Leaving: it takes no new partitions and hands its own off. */
  draining: boolean;
  startedAt: number;
  /** Wall-clock time of this heartbeat (for `cluster status`; liveness uses the receiver's clock). */
  at: number;
  owned: number;
  /** Events committed on this node and not yet confirmed by JetStream. */
  lagEvents: number;
  /** Where clients reach this node's gateway (`--advertise-url`); absent until it listens. */
  url?: string | undefined;
}

export interface StoredAssignment {
  assignment: Assignment;
  revision: number;
}

/** Which node runs a projection; `epoch` grows at every move. */
export interface ProjectionPlacement {
  node: string;
  epoch: number;
}

export interface StoredPlacement {
  placement: ProjectionPlacement;
  revision: number;
}

export interface ClusterTimings {
  /** How often a node heartbeats and the leader plans (default 500 ms). */
  heartbeatMs: number;
  /** No heartbeat for this long and a node is dead: its partitions go to others (default 3,000 ms). */
  deadAfterMs: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encode(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function decode<T>(entry: KvEntry): T {
  return JSON.parse(decoder.decode(entry.value)) as T;
}

/**
 * The cluster's shared state in three NATS KV buckets: `<PREFIX>_CLUSTER` (the partition
 * count and every partition's assignment, no expiry), `<PREFIX>_NODES` (heartbeats, expiring)
 * and `<PREFIX>_LEADER` (the leader lock: create-if-absent, expiring unless refreshed).
 * Every write that decides something is compare-and-set on the key's revision: losing that
 * race is an answer (false, undefined), while NATS not answering throws, since then nothing is
 * known of what the bucket holds.
 */
export class ClusterStore {
  private constructor(
    private readonly jsm: JetStreamManager,
    private readonly base: string,
    private readonly cluster: KV,
    private readonly nodes: KV,
    private readonly leader: KV,
  ) {}

  /** The names of the cluster's KV buckets under `prefix` (each is the stream `KV_<bucket>`). */
  static bucketsOf(prefix: string): string[] {
    const base = upperPrefixOf(prefix);
    return [`${base}_CLUSTER`, `${base}_NODES`, `${base}_LEADER`];
  }

  /**
   * Opens the buckets, creating any that is missing with `layout.replicas` replicas (refused
   * with SHARDLOG_NATS_REPLICAS_UNPLACEABLE if NATS cannot place them); one that exists with
   * another count keeps it and is reported to `layout.onOtherReplicas`.
   */
  static async open(nc: NatsConnection, prefix: string, timings: ClusterTimings, layout: ReplicaLayout = {}): Promise<ClusterStore> {
    const kvm = new Kvm(nc);
    const base = upperPrefixOf(prefix);
    const replicas = layout.replicas ?? 1;
    const create = async (bucket: string, options: Partial<KvOptions>): Promise<KV> => {
      let kv: KV;
      try {
        kv = await kvm.create(bucket, { ...options, replicas });
      } catch (error) {
        throw placementRefusal(error, `KV_${bucket}`, replicas);
      }
      if (layout.replicas !== undefined) {
        const existing = (await kv.status()).replicas;
        if (existing !== layout.replicas) layout.onOtherReplicas?.(`KV_${bucket}`, existing);
      }
      return kv;
    };
    const [cluster, nodes, leader] = await Promise.all([
      create(`${base}_CLUSTER`, { history: 1, storage: 'file' }),
      create(`${base}_NODES`, { history: 1, ttl: Math.max(10_000, timings.deadAfterMs * 3) }),
      create(`${base}_LEADER`, { history: 1, ttl: timings.deadAfterMs }),
    ]);
    return new ClusterStore(await jetstreamManager(nc), base, cluster, nodes, leader);
  }

  /** Opens the buckets of an existing cluster without creating anything; undefined if there is none. */
  static async openExisting(nc: NatsConnection, prefix: string): Promise<ClusterStore | undefined> {
    const kvm = new Kvm(nc);
    const base = upperPrefixOf(prefix);
    const [cluster, nodes, leader] = await Promise.all([kvm.open(`${base}_CLUSTER`), kvm.open(`${base}_NODES`), kvm.open(`${base}_LEADER`)]);
    try {
      await cluster.status();
    } catch (error) {
      if (isStreamNotFound(error)) return undefined;
      throw error;
    }
    return new ClusterStore(await jetstreamManager(nc), base, cluster, nodes, leader);
  }

  /** Records P when the cluster is created; refuses a node started with another P. */
  async checkPartitionCount(partitions: number): Promise<void> {
    try {
      await this.cluster.create('meta', encode({ partitions, createdAt: new Date().toISOString() }));
      return;
    } catch (error) {
      // It exists (or the create raced with another node's): compare with what is there.
      if (!isWrongLastSequence(error)) throw error;
    }
    const entry = await this.cluster.get('meta');
    if (entry === null || entry.operation !== 'PUT') throw new Error('the cluster meta record could not be read');
    const stored = decode<{ partitions: number }>(entry).partitions;
    if (stored !== partitions) {
      throw makeError(
        'SHARDLOG_CLUSTER_MISMATCH',
        `this cluster was created with ${stored} partitions and this node has ${partitions}: start it with --partitions ${stored} on a fresh data dir`,
        { cluster: stored, node: partitions },
      );
    }
  }

  async partitionCount(): Promise<number | undefined> {
    const entry = await this.cluster.get('meta');
    return entry === null || entry.operation !== 'PUT' ? undefined : decode<{ partitions: number }>(entry).partitions;
  }

  async heartbeat(beat: NodeHeartbeat): Promise<void> {
    await this.nodes.put(beat.nodeId, encode(beat));
  }

  async forgetNode(nodeId: string): Promise<void> {
    await this.nodes.delete(nodeId);
  }

  /**
   * Takes the leader lock if free, or refreshes it if held by this node (at `revision`); its
   * new revision, or undefined if another node holds it. Throws if NATS does not answer.
   */
  async lead(nodeId: string, revision: number | undefined): Promise<number | undefined> {
    try {
      if (revision !== undefined) return await this.leader.update('leader', encode({ nodeId }), revision);
      // Another node's live lock: one read, where a create that fails costs the server three
      // requests (the write, then the client's read and retry of a deleted key) every heartbeat.
      const held = await this.leader.get('leader');
      if (held !== null && held.operation === 'PUT' && decode<{ nodeId: string }>(held).nodeId !== nodeId) return undefined;
      return await this.leader.create('leader', encode({ nodeId }));
    } catch (error) {
      if (isWrongLastSequence(error)) return undefined;
      throw error;
    }
  }

  async resign(nodeId: string): Promise<void> {
    const entry = await this.leader.get('leader');
    if (entry !== null && entry.operation === 'PUT' && decode<{ nodeId: string }>(entry).nodeId === nodeId) {
      try {
        await this.leader.delete('leader', { previousSeq: entry.revision });
      } catch (error) {
        // Another node took the lock meanwhile: it is not this node's to remove.
        if (!isWrongLastSequence(error)) throw error;
      }
    }
  }

  async leaderId(): Promise<string | undefined> {
    const entry = await this.leader.get('leader');
    return entry === null || entry.operation !== 'PUT' ? undefined : decode<{ nodeId: string }>(entry).nodeId;
  }

  /**
   * Writes a partition's assignment if its revision is still `revision` (0: the key must not
   * exist); false if it changed. Throws if NATS does not answer: the write may or may not
   * have been made, and the assignment watch tells which.
   */
  async setAssignment(partition: number, assignment: Assignment, revision: number): Promise<boolean> {
    try {
      if (revision === 0) await this.cluster.create(`partitions.${partition}`, encode(assignment));
      else await this.cluster.update(`partitions.${partition}`, encode(assignment), revision);
      return true;
    } catch (error) {
      if (isWrongLastSequence(error)) return false;
      throw error;
    }
  }

  /**
   * The keys of a bucket, from its stream's per-subject state: one API request. (The KV
   * client's `keys()` reads them with a consumer that, seen here, can wait for ever while the
   * keys are being rewritten.)
   */
  private async keysOf(bucket: string, filter: string): Promise<string[]> {
    const subjectPrefix = `$KV.${bucket}.`;
    const info = await this.jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${subjectPrefix}${filter}` });
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(subjectPrefix.length));
  }

  async assignments(): Promise<Map<number, StoredAssignment>> {
    const result = new Map<number, StoredAssignment>();
    const keys = await this.keysOf(`${this.base}_CLUSTER`, 'partitions.*');
    await Promise.all(
      keys.map(async (key) => {
        const entry = await this.cluster.get(key);
        if (entry !== null && entry.operation === 'PUT') result.set(Number(key.slice('partitions.'.length)), { assignment: decode<Assignment>(entry), revision: entry.revision });
      }),
    );
    return result;
  }

  async heartbeats(): Promise<NodeHeartbeat[]> {
    const keys = await this.keysOf(`${this.base}_NODES`, '>');
    const beats = await Promise.all(keys.map((key) => this.heartbeatOf(key)));
    return beats.filter((beat): beat is NodeHeartbeat => beat !== undefined);
  }

  async heartbeatOf(nodeId: string): Promise<NodeHeartbeat | undefined> {
    const entry = await this.nodes.get(nodeId);
    return entry !== null && entry.operation === 'PUT' ? decode<NodeHeartbeat>(entry) : undefined;
  }

  /** Calls back with every assignment as it is now, then with each change. */
  async watchAssignments(onChange: (partition: number, stored: StoredAssignment | undefined) => void): Promise<() => void> {
    const watch = await this.cluster.watch({ key: 'partitions.*' });
    void (async () => {
      for await (const entry of watch) {
        const partition = Number(entry.key.slice('partitions.'.length));
        onChange(partition, entry.operation === 'PUT' ? { assignment: decode<Assignment>(entry), revision: entry.revision } : undefined);
      }
    })();
    return () => watch.stop();
  }

  /** Writes a projection's placement if its revision is still `revision` (0: the key must not exist); false if it changed. */
  async setPlacement(projection: string, placement: ProjectionPlacement, revision: number): Promise<boolean> {
    try {
      if (revision === 0) await this.cluster.create(`projections.${projection}`, encode(placement));
      else await this.cluster.update(`projections.${projection}`, encode(placement), revision);
      return true;
    } catch (error) {
      if (isWrongLastSequence(error)) return false;
      throw error;
    }
  }

  async placements(): Promise<Map<string, ProjectionPlacement>> {
    const result = new Map<string, ProjectionPlacement>();
    const keys = await this.keysOf(`${this.base}_CLUSTER`, 'projections.*');
    await Promise.all(
      keys.map(async (key) => {
        const entry = await this.cluster.get(key);
        if (entry !== null && entry.operation === 'PUT') result.set(key.slice('projections.'.length), decode<ProjectionPlacement>(entry));
      }),
    );
    return result;
  }

  /** Calls back with every projection's placement as it is now, then with each change. */
  async watchPlacements(onChange: (projection: string, stored: StoredPlacement | undefined) => void): Promise<() => void> {
    const watch = await this.cluster.watch({ key: 'projections.*' });
    void (async () => {
      for await (const entry of watch) {
        onChange(entry.key.slice('projections.'.length), entry.operation === 'PUT' ? { placement: decode<ProjectionPlacement>(entry), revision: entry.revision } : undefined);
      }
    })();
    return () => watch.stop();
  }

  /** Calls back with every heartbeat as it arrives (and a delete when a node leaves cleanly). */
  async watchHeartbeats(onBeat: (nodeId: string, beat: NodeHeartbeat | undefined) => void): Promise<() => void> {
    const watch = await this.nodes.watch();
    void (async () => {
      for await (const entry of watch) onBeat(entry.key, entry.operation === 'PUT' ? decode<NodeHeartbeat>(entry) : undefined);
    })();
    return () => watch.stop();
  }
}
