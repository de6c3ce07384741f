import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ensureEventStream } from '../bus/jetstream-relay.ts';
import { leadersElected, otherReplicasMessage, patientlyCreating, type ReplicaLayout } from '../bus/replicas.ts';
import type { Logger } from '../logger.ts';
import type { CommandEnvelope, CommandRecord, CommandResult, ShardRequest, ShardResponse } from '../protocol.ts';
import type { Views } from '../view-calls.ts';
import { ChangeSignal } from './change-signal.ts';
import type { ClusterHost } from './cluster-host.ts';
import { ClusterStore, type ClusterTimings, type StoredAssignment } from './cluster-store.ts';
import { Forwarding, type ForwardingCounters } from './forwarding.ts';
import { Membership } from './membership.ts';
import { PartitionOwnership, type HandoffCounters } from './partition-ownership.ts';
import { ProjectionPlacement } from './projection-placement.ts';
import { StreamHeads, type StreamHeadCounters } from './stream-heads.ts';
import { ViewForwarding, type LocalViews } from './view-forwarding.ts';


export interface ClusterOptions {
  nodeId: string;
  servers: string | string[];
  prefix: string;
  /** Replicas of the event stream and the KV buckets this node creates (default 1); an existing one with another count is reported. */
  replicas?: number | undefined;
  host: ClusterHost;
  logger: Logger;
  timings?: Partial<ClusterTimings>;
  /** How long a command waits for a partition in handoff before 503 (default 5,000 ms). */
  moveWaitMs?: number;
  /** How long the old owner waits for its in-flight commands and its tail to be in JetStream before giving up a handoff (default 10,000 ms). */
  drainMs?: number;
  /** How long the owner waits for the target to copy the partition before handing off anyway (default 15,000 ms). */
  readyWaitMs?: number;
  /** The app's projections: the leader places each on one node. */
  projections?: readonly string[];
}

export type ClusterCounters = ForwardingCounters & HandoffCounters & StreamHeadCounters;

/** Who serves a partition, and where a client reaches it. */
export interface PartitionOwner {
  partition: number;
  nodeId: string;
  url: string | null;
  epoch: number;
}

export interface ClusterStatus {
  nodeId: string;
  leader: boolean;
  owned: number;
  acquiring: number;
  releasing: number;
  draining: boolean;
  counters: ClusterCounters;
}

const defaultTimings: ClusterTimings = { heartbeatMs: 1_000, deadAfterMs: 3_000 };

/**
 * This node's part in a cluster, composed of its membership (heartbeats, the leader lock and
 * the leader's planning), the partitions it holds and their handoffs, and forwarding of
 * commands and reads for partitions it does not serve to the node that does.
 */
export class ClusterNode {
  private readonly assignments = new Map<number, StoredAssignment>();
  private readonly changes = new ChangeSignal();
  private readonly membership: Membership;
  private readonly ownership: PartitionOwnership;
  private readonly forwarding: Forwarding;
  private readonly placement: ProjectionPlacement;
  private readonly viewForwarding: ViewForwarding;
  private readonly streamHeads: StreamHeads;
  private stopWatches: (() => void)[] = [];
  private advertisedUrl: string | undefined;
  private stopped = false;

  private constructor(
    private readonly options: ClusterOptions,
    private readonly nc: NatsConnection,
    store: ClusterStore,
    timings: ClusterTimings,
    jsm: JetStreamManager,
    stream: string,
  ) {
    const { nodeId, prefix, host, logger } = options;
    this.streamHeads = new StreamHeads({ nc, jsm, stream, prefix, host, logger });
    this.forwarding = new Forwarding({
      nodeId,
      nc,
      prefix,
      host,
      logger,
      assignments: this.assignments,
      changes: this.changes,
      served: { stateOf: (partition) => this.ownership.stateOf(partition), epochOf: (partition) => this.ownership.epochOf(partition), runServing: (partition, envelope) => this.ownership.runServing(partition, envelope) },
      moveWaitMs: options.moveWaitMs,
    });
    this.ownership = new PartitionOwnership({
      nodeId,
      prefix,
      host,
      logger,
      js: jetstream(nc),
      jsm,
      stream,
      store,
      assignments: this.assignments,
      changes: this.changes,
      isDraining: () => this.membership.draining,
      answerForwarded: (partition) => this.forwarding.listen(partition),
      drainMs: options.drainMs,
      readyWaitMs: options.readyWaitMs,
    });
    this.viewForwarding = new ViewForwarding({ nodeId, nc, prefix, logger, nodeOf: (projection) => this.placement.nodeOf(projection), changes: this.changes, moveWaitMs: options.moveWaitMs });
    this.placement = new ProjectionPlacement({
      nodeId,
      store,
      logger,
      projections: options.projections ?? [],
      changes: this.changes,
      runHere: (names) => this.viewForwarding.runHere(names),
    });
    this.membership = new Membership({
      nodeId,
      store,
      timings,
      host,
      logger,
      assignments: this.assignments,
      owned: () => this.ownership.tally().owned,
      url: () => this.advertisedUrl,
      afterBeat: () => {
        for (const partition of this.assignments.keys()) this.ownership.reconcile(partition);
      },
      planMore: (candidates, onlyUnplaced) => this.placement.plan(candidates, onlyUnplaced),
    });
  }

  static async start(options: ClusterOptions): Promise<ClusterNode> {
    const timings = { ...defaultTimings, ...options.timings };
    const nc = await connect({ servers: options.servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true, name: `shardlog-cluster-${options.nodeId}` });
    try {
      const layout: ReplicaLayout = {
        replicas: options.replicas,
        onOtherReplicas: (stream, existing) => options.logger.warn({ stream, replicas: existing }, otherReplicasMessage(stream, existing, options.replicas ?? 1)),
      };
      const store = await patientlyCreating(() => ClusterStore.open(nc, options.prefix, timings, layout));
      const jsm = await jetstreamManager(nc);
      const stream = await patientlyCreating(() => ensureEventStream(jsm, options.prefix, layout));
      await leadersElected(jsm, [stream, ...ClusterStore.bucketsOf(options.prefix).map((bucket) => `KV_${bucket}`)]);
      await store.checkPartitionCount(options.host.partitions);
      const node = new ClusterNode(options, nc, store, timings, jsm, stream);
      node.forwarding.answerCommandLookups();
      node.forwarding.answerCommandBatches();
      void node.membership.watchConnection(nc);
      void node.relearnHeadsOnReconnect();
      await node.membership.beat();
      node.stopWatches.push(await store.watchHeartbeats((nodeId, beat) => node.membership.onHeartbeat(nodeId, beat)));
      node.stopWatches.push(await store.watchAssignments((partition, stored) => node.onAssignment(partition, stored)));
      node.stopWatches.push(await store.watchPlacements((projection, stored) => node.placement.onPlacement(projection, stored)));
      node.membership.start();
      return node;
    } catch (error) {
      await nc.close().catch((closeError: unknown) => options.logger.warn({ err: closeError }, 'could not close the NATS connection of a cluster node that failed to start'));
      throw error;
    }
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** Whether this node serves the partition now (the relay publishes only these). */
  owns(partition: number): boolean {
    return this.ownership.owns(partition);
  }

  status(): ClusterStatus {
    return {
      nodeId: this.nodeId,
      leader: this.membership.leader,
      ...this.ownership.tally(),
      draining: this.membership.draining,
      counters: { ...this.forwarding.counters(), ...this.ownership.counters(), ...this.streamHeads.counters() },
    };
  }

  /** Tells the other nodes (in the heartbeat) where clients reach this node's gateway. */
  advertise(url: string): void {
    this.advertisedUrl = url;
    // Beat now rather than at the next period: the other nodes can name this one as owner at once.
    if (!this.stopped) this.membership.beat().catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not advertise this node’s URL yet; the next heartbeat carries it'));
  }

  /** The partition's owner as this node last saw it, with the owner's advertised URL (null until known). */
  ownerOf(partition: number): PartitionOwner | undefined {
    const stored = this.assignments.get(partition);
    if (stored === undefined) return undefined;
    const { owner, epoch } = stored.assignment;
    return { partition, nodeId: owner, url: this.membership.urlOf(owner) ?? null, epoch };
  }

  /** Every assigned partition's owner, in partition order. */
  owners(): PartitionOwner[] {
    return [...this.assignments.keys()].sort((a, b) => a - b).map((partition) => this.ownerOf(partition)!);
  }

  /** The assignment of every partition as this node last saw it. */
  assignmentTable(): { partition: number; owner: string; epoch: number; target?: string }[] {
    return [...this.assignments].sort(([a], [b]) => a - b).map(([partition, { assignment }]) => ({ partition, ...assignment }));
  }

  /**
   * Runs a command wherever its partition is served: here, or forwarded to the owner. While
   * the partition moves, waits (bounded), then fails with SHARDLOG_PARTITION_MOVING.
   */
  submit(partition: number, envelope: CommandEnvelope): Promise<CommandResult> {
    return this.forwarding.submit(partition, envelope);
  }

  /** Reads an aggregate on the node that serves its partition (this node's copy of it may be stale). */
  read(partition: number, request: ShardRequest): Promise<ShardResponse> {
    return this.forwarding.read(partition, request);
  }

  /** Another node's confirmed record of a command id, if one has it (silence for half a second: none has). */
  findCommand(commandId: string): Promise<CommandRecord | undefined> {
    return this.forwarding.findCommand(commandId);
  }

  /** This node's projector, once it runs: it runs the projections placed here and answers their view calls. */
  attachViews(local: LocalViews): void {
    this.viewForwarding.attach(local, this.placement.placedHere());
  }

  /** Views read (and projections operated) on the node that runs each projection. */
  get views(): Views {
    return this.viewForwarding;
  }

  /** Every projection with the node it is placed on, as this node last saw it. */
  placementTable(): { projection: string; node: string | undefined; epoch: number }[] {
    return this.placement.table();
  }

  /**
   * Follows every partition's head as published by any node (for `GET /events`) until the
   * returned stop is called; resolves once this node knows the heads the stream holds now.
   * Nobody following: this node receives none of the other nodes' batches.
   */
  followStreamHeads(): Promise<() => void> {
    return this.streamHeads.follow();
  }

  /** While heads are followed, a reconnect re-reads them: batches published during the outage went unseen. */
  private async relearnHeadsOnReconnect(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type !== 'reconnect') continue;
      await this.streamHeads.relearn().catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not re-read partition heads after a reconnect: GET /events streams wake on the next batch of each partition'));
    }
  }

  /** The relay found another node's events on this partition's subject: stop serving it; look again shortly. */
  fenced(partition: number): void {
    this.ownership.fenced(partition);
  }

  private onAssignment(partition: number, stored: StoredAssignment | undefined): void {
    if (stored === undefined) this.assignments.delete(partition);
    else this.assignments.set(partition, stored);
    this.changes.notify();
    this.ownership.reconcile(partition);
  }

  /**
   * Leaves the cluster gracefully: stops taking partitions, hands every owned one off
   * (bounded by `timeoutMs`), then removes its heartbeat and leader lock.
   */
  async leave(timeoutMs = 30_000): Promise<void> {
    if (this.stopped) return;
    this.membership.startDraining();
    const deadline = Date.now() + timeoutMs;
    await this.membership.tick();
    while (this.ownership.held().length > 0 && Date.now() < deadline && this.membership.othersAlive()) await this.changes.wait(100);
    const held = this.ownership.held();
    if (held.length > 0 && this.membership.othersAlive()) {
      this.options.logger.warn({ partitions: held }, 'left the cluster still owning partitions: the others take them once its heartbeat is gone');
    } else if (held.length > 0) {
      this.options.logger.info({ partitions: held.length }, 'last node of the cluster: its partitions stay assigned to it until it, or another node, starts');
    }
    await this.stop();
  }

  /** Stops at once: unsubscribes and forgets its heartbeat; what it owned moves once the leader sees it gone. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.membership.stop();
    this.forwarding.stop();
    this.viewForwarding.stop();
    this.streamHeads.stop();
    for (const stop of this.stopWatches) stop();
    await this.ownership.stop(2_000);
    this.changes.notify();
    await Promise.all([this.forwarding.finishAnswering(3_000), this.viewForwarding.finishAnswering(3_000)]);
    await this.membership.leaveCluster();
    this.changes.notify();
    await this.closeConnection();
  }

  private async closeConnection(): Promise<void> {
    const drained = this.nc.drain().catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not drain the cluster connection; closing it'));
    await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, 2_000))]);
    if (!this.nc.isClosed()) await this.nc.close().catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not close the cluster connection'));
  }
}
