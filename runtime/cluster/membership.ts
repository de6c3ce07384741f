import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../logger.ts';
import { planAssignments } from './assignment-plan.ts';
import type { ClusterHost } from './cluster-host.ts';
import type { ClusterStore, ClusterTimings, NodeHeartbeat, StoredAssignment } from './cluster-store.ts';

export interface MembershipOptions {
  nodeId: string;
  store: ClusterStore;
  timings: ClusterTimings;
  host: Pick<ClusterHost, 'partitions' | 'lagEvents'>;
  logger: Logger;
  /** Every partition's assignment as this node last saw it. */
  assignments: ReadonlyMap<number, StoredAssignment>;
  /** How many partitions this node serves (for its heartbeat). */
  owned: () => number;
  /** Called after each successful heartbeat: look at every partition again. */
  afterBeat: () => void;
  /** This node's advertised gateway URL, once known. */
  url: () => string | undefined;
  /** The leader's further planning (projection placement) over the same live nodes; `onlyUnplaced` just after a reconnect. */
  planMore?: (candidates: readonly string[], onlyUnplaced: boolean) => Promise<void>;
}

/**
 * This node's membership: it heartbeats into the cluster's KV, follows the others'
 * heartbeats, takes or refreshes the leader lock, and while it leads writes the assignments
 * the live nodes call for (rendezvous hashing over the nodes that are not leaving).
 */
export class Membership {
  private readonly lastBeat = new Map<string, { at: number; draining: boolean }>();
  /** Each node's advertised gateway URL, from its heartbeats. */
  private readonly urls = new Map<string, string>();
  /** The leader lock's revision while this node holds it (kept through an outage, to refresh it after). */
  private leaseRevision: number | undefined;
  /** Whether this node acts as leader: it refreshed the lock at its last heartbeat. */
  private leading = false;
  private planning: Promise<void> | undefined;
  /** When this node's NATS connection last came back: heartbeats seen before then are stale. */
  /** Local times (performance.now(): a wall clock stepped back must not keep a dead node alive) of the last reconnect and of each node's last heartbeat seen. */
  private reconnectedAt = Number.NEGATIVE_INFINITY;
  private leaving = false;
  private stopped = false;
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: MembershipOptions) {}

  get leader(): boolean {
    return this.leading;
  }

  get draining(): boolean {
    return this.leaving;
  }

  /** Heartbeats every `heartbeatMs` from now on. */
  start(): void {
    this.timer = setInterval(() => void this.tick(), this.options.timings.heartbeatMs);
    void this.tick();
  }

  /** Takes no new partitions from now on; the leader hands this node's to the others. */
  startDraining(): void {
    this.leaving = true;
  }

  async beat(): Promise<void> {
    await this.options.store.heartbeat({
      nodeId: this.options.nodeId,
      draining: this.leaving,
      startedAt: this.startedAt,
      at: Date.now(),
      owned: this.options.owned(),
      lagEvents: this.options.host.lagEvents(),
      url: this.options.url(),
    });
  }

  async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.beat();
      await this.holdLeaderLock();
      if (this.leading) await (this.planning ?? this.plan());
      this.options.afterBeat();
    } catch (error) {
      this.options.logger.warn({ err: error }, 'cluster heartbeat failed');
    }
  }

  private async holdLeaderLock(): Promise<void> {
    try {
      this.leaseRevision = await this.options.store.lead(this.options.nodeId, this.leaseRevision);
      this.leading = this.leaseRevision !== undefined;
    } catch (error) {
      // NATS did not answer: the lock may have expired meanwhile, so stop leading until it is refreshed.
      this.leading = false;
      throw error;
    }
  }

  /** A heartbeat (or a node's clean leave, `undefined`) arrived through the watch. */
  onHeartbeat(nodeId: string, beat: NodeHeartbeat | undefined): void {
    const before = this.lastBeat.get(nodeId);
    if (beat === undefined) this.lastBeat.delete(nodeId);
    else this.lastBeat.set(nodeId, { at: performance.now(), draining: beat.draining });
    if (beat?.url !== undefined) this.urls.set(nodeId, beat.url);
    // A node joining, leaving or gone: the leader plans now rather than at its next tick.
    if (this.leading && (before === undefined || beat === undefined || before.draining !== beat.draining)) this.planSoon();
  }

  /** A node's advertised gateway URL, as its last heartbeat said (this node's own is known first-hand). */
  urlOf(nodeId: string): string | undefined {
    return nodeId === this.options.nodeId ? this.options.url() : this.urls.get(nodeId);
  }

  /** Whether another node that is not leaving has heartbeated recently. */
  othersAlive(): boolean {
    return [...this.lastBeat].some(([nodeId, { at, draining }]) => nodeId !== this.options.nodeId && !draining && performance.now() - at <= this.options.timings.deadAfterMs);
  }

  /** Notes reconnects (heartbeats seen before one are stale) and warns on disconnects, until the connection closes. */
  async watchConnection(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'reconnect') this.reconnectedAt = performance.now();
      else if (status.type === 'disconnect') this.options.logger.warn({ nodeId: this.options.nodeId }, 'cluster lost NATS: commands for this node’s partitions fail until it is back (no PubAck, no acknowledgement)');
    }
  }

  private planSoon(): void {
    if (this.planning !== undefined || this.stopped) return;
    this.planning = this.plan()
      .catch((error: unknown) => this.options.logger.warn({ err: error }, 'planning assignments failed'))
      .finally(() => (this.planning = undefined));
  }

  /** The leader's step: write the assignments the live nodes call for. */
  private async plan(): Promise<void> {
    const { nodeId, store, timings, assignments, logger } = this.options;
    const now = performance.now();
    const alive = new Set<string>();
    const candidates: string[] = [];
    for (const [id, { at, draining }] of this.lastBeat) {
      if (now - at > timings.deadAfterMs) continue;
      alive.add(id);
      if (!draining) candidates.push(id);
    }
    alive.add(nodeId);
    if (!this.leaving && !candidates.includes(nodeId)) candidates.push(nodeId);
    const current = new Map([...assignments].map(([partition, { assignment }]) => [partition, assignment]));
    // Before declaring an owner dead, read its heartbeat itself: the watch that feeds
    // `lastBeat` can stall for seconds under load, and a false death moves partitions twice.
    // (If NATS does not answer, nobody is declared dead: planning fails and runs again.)
    const silent = new Set([...current.values()].map((assignment) => assignment.owner).filter((owner) => !alive.has(owner)));
    for (const id of silent) {
      const beat = await store.heartbeatOf(id);
      if (beat === undefined || Date.now() - beat.at > timings.deadAfterMs) continue;
      this.lastBeat.set(id, { at: performance.now(), draining: beat.draining });
      alive.add(id);
      if (!beat.draining) candidates.push(id);
    }
    let changes = planAssignments({ partitions: this.options.host.partitions, current, alive, candidates });
    const justReconnected = now - this.reconnectedAt < timings.deadAfterMs;
    if (justReconnected) {
      // Back after losing NATS: every heartbeat seen before is stale, so no one is declared
      // dead until a heartbeat period has passed; only partitions nobody owns are assigned.
      changes = new Map([...changes].filter(([partition]) => !current.has(partition)));
    }
    await Promise.all(
      [...changes].map(async ([partition, assignment]) => {
        const written = await store.setAssignment(partition, assignment, assignments.get(partition)?.revision ?? 0);
        if (written && assignment.owner !== current.get(partition)?.owner && current.has(partition)) {
          logger.warn({ partition, from: current.get(partition)?.owner, to: assignment.owner, epoch: assignment.epoch }, 'gave the partition of a dead node to another');
        }
      }),
    );
    await this.options.planMore?.(candidates, justReconnected);
  }

  /** Stops heartbeating; `leaveCluster` then removes this node's heartbeat and leader lock. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** Removes this node's heartbeat and, if it holds it, the leader lock, so the others act at once rather than when they expire. */
  async leaveCluster(): Promise<void> {
    const { store, nodeId, logger } = this.options;
    const steps = [store.forgetNode(nodeId), ...(this.leaseRevision === undefined ? [] : [store.resign(nodeId)])];
    for (const step of await Promise.allSettled(steps)) {
      if (step.status === 'rejected') logger.warn({ err: step.reason as unknown }, 'could not remove this node from the cluster: the others notice when its heartbeat expires');
    }
  }
}
