import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ClusterStatus } from '../runtime/cluster/cluster-node.ts';
import type { BatchReport, ProjectionStatus, Sagas, ShardStats } from '../runtime/index.ts';

/** The node's Prometheus metrics. Created before the runtime, since it feeds on its batch reports. */
export class Metrics {
  readonly registry = new Registry();
  private readonly commands: Counter<'aggregate' | 'command' | 'outcome'>;
  private readonly commandSeconds: Histogram<'aggregate' | 'command'>;
  private readonly batchSize: Histogram<'shard'>;
  private readonly batchSeconds: Histogram<'shard'>;
  private readonly commitSeconds: Histogram<'shard'>;
  private readonly eventsAppended: Counter<'shard'>;
  private shardStats: () => ShardStats[] = () => [];
  private projectionStatus: () => Promise<ProjectionStatus[]> = () => Promise.resolve([]);
  private projectionScrape: { at: number; statuses: Promise<ProjectionStatus[]> } | undefined;
  private busLag: () => { partition: number; head: number; published: number }[] = () => [];
  private walSizes: () => { shard: number; bytes: number }[] = () => [];

  constructor() {
    // The event-loop delay histogram samples with a timer: at the default 10 ms it woke an idle
    // node 100 times a second (most of its idle CPU); 100 ms still gives ten samples a second.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    const registers = [this.registry];
    this.commands = new Counter({
      name: 'shardlog_commands_total',
      help: 'Commands answered, by aggregate, command and outcome (committed, rejected, or the error code).',
      labelNames: ['aggregate', 'command', 'outcome'],
      registers,
    });
    this.commandSeconds = new Histogram({
      name: 'shardlog_command_duration_seconds',
      help: 'Time from receiving a command to its reply.',
      labelNames: ['aggregate', 'command'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'shardlog_batch_size',
      help: 'Commands per group commit.',
      labelNames: ['shard'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    });
    this.batchSeconds = new Histogram({
      name: 'shardlog_batch_duration_seconds',
      help: 'Time from sending a batch to its shard to its replies, commit included.',
      labelNames: ['shard'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers,
    });
    this.commitSeconds = new Histogram({
      name: 'shardlog_commit_duration_seconds',
      help: "A batch's transaction alone on its shard thread, fsync included: the part of shardlog_batch_duration_seconds that is SQLite.",
      labelNames: ['shard'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers,
    });
    this.eventsAppended = new Counter({ name: 'shardlog_events_appended_total', help: 'Events committed to the shard logs.', labelNames: ['shard'], registers });
    const stats = () => this.shardStats();
    new Gauge({
      name: 'shardlog_shard_queue_depth',
      help: 'Commands waiting for their shard.',
      labelNames: ['shard'],
      registers,
      collect() {
        for (const shard of stats()) this.set({ shard: String(shard.shard) }, shard.queued);
      },
    });
    new Gauge({
      name: 'shardlog_shard_up',
      help: '1 while the shard is serving, 0 while restarting or down.',
      labelNames: ['shard'],
      registers,
      collect() {
        for (const shard of stats()) this.set({ shard: String(shard.shard) }, shard.status === 'serving' ? 1 : 0);
      },
    });
    const projections = () => this.scrapeProjections();
    const projectionGauge = (name: string, help: string, value: (status: ProjectionStatus) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['projection'],
        registers,
        async collect() {
          // A projection placed on another node is not this node's to report: drop its last value.
          this.reset();
          for (const status of await projections()) this.set({ projection: status.name }, value(status));
        },
      });
    projectionGauge('shardlog_projection_lag_events', 'Committed events the projection has not applied yet.', (status) => status.lagEvents);
    projectionGauge('shardlog_projection_lag_seconds', 'How long the oldest unapplied event has waited.', (status) => status.lagMs / 1_000);
    projectionGauge('shardlog_projection_dead_letters', 'Events parked in the projection’s dead-letter table.', (status) => status.deadLetters);
    projectionGauge('shardlog_projection_halted', '1 while the projection is halted on an event it could not apply.', (status) => (status.halted === null ? 0 : 1));
    new Counter({
      name: 'shardlog_projection_events_applied_total',
      help: 'Events the projection has folded (or passed over) since the node started.',
      labelNames: ['projection'],
      registers,
      async collect() {
        this.reset();
        for (const status of await projections()) this.inc({ projection: status.name }, status.applied);
      },
    });
    const busLag = () => this.busLag();
    new Gauge({
      name: 'shardlog_relay_lag_events',
      help: 'Committed events of the partition not yet published to JetStream.',
      labelNames: ['partition'],
      registers,
      collect() {
        this.reset();
        for (const lag of busLag()) this.set({ partition: String(lag.partition) }, Math.max(0, lag.head - lag.published));
      },
    });
    const walSizes = () => this.walSizes();
    new Gauge({
      name: 'shardlog_wal_bytes',
      help: 'Bytes of write-ahead log of the shard log as of its last background checkpoint; it grows while a reader holds an old snapshot.',
      labelNames: ['shard'],
      registers,
      collect() {
        for (const wal of walSizes()) this.set({ shard: String(wal.shard) }, wal.bytes);
      },
    });
  }

  /** Saga counts of this node and the instances running in its partitions, read at each scrape (one shard call per scrape). */
  watchSagas(sagas: Sagas): void {
    const registers = [this.registry];
    let scrape: { at: number; rows: ReturnType<Sagas['metrics']> } | undefined;
    const rows = () => {
      const now = Date.now();
      if (scrape === undefined || now - scrape.at > 250) scrape = { at: now, rows: sagas.metrics().catch(() => []) };
      return scrape.rows;
    };
    type Row = Awaited<ReturnType<Sagas['metrics']>>[number];
    const counter = (name: string, help: string, value: (row: Row) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['saga'],
        registers,
        async collect() {
          this.reset();
          for (const row of await rows()) this.inc({ saga: row.saga }, value(row));
        },
      });
    const gauge = (name: string, help: string, value: (row: Row) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['saga'],
        registers,
        async collect() {
          this.reset();
          for (const row of await rows()) this.set({ saga: row.saga }, value(row));
        },
      });
    counter('shardlog_saga_started_total', 'Saga instances started on this node since it started.', (row) => row.started);
    counter('shardlog_saga_completed_total', 'Saga instances that finished completed on this node.', (row) => row.completed);
    counter('shardlog_saga_compensated_total', 'Saga instances that finished compensated on this node.', (row) => row.compensated);
    counter('shardlog_saga_timed_out_total', 'Saga instances that finished timed out on this node.', (row) => row.timedOut);
    gauge('shardlog_saga_in_flight', 'Saga instances running in the partitions this node serves.', (row) => row.inFlight);
    gauge('shardlog_saga_oldest_in_flight_seconds', 'How long the oldest running saga instance in this node’s partitions has run.', (row) => row.oldestInFlightSeconds);
    const backlog = (name: string, help: string, value: (backlog: ReturnType<Sagas['backlog']>) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(value(sagas.backlog()));
        },
      });
    backlog('shardlog_saga_undelivered_events', 'Committed events of this node’s partitions not yet delivered to sagas.', (current) => current.undelivered);
    backlog('shardlog_saga_pending_commands', 'Commands saga instances on this node decided and have not settled.', (current) => current.pendingCommands);
    backlog('shardlog_saga_timers', 'Timers set on the saga instances this node serves.', (current) => current.timers);
  }

  /** Cluster counters (forwarded commands, handoffs, fencing) and partitions owned, read at each scrape. */
  watchCluster(status: () => ClusterStatus | undefined): void {
    const registers = [this.registry];
    const counter = (name: string, help: string, value: (counters: ClusterStatus['counters']) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const current = status();
          if (current === undefined) return;
          this.reset();
          this.inc(value(current.counters));
        },
      });
    counter('shardlog_cluster_forwarded_commands_total', 'Commands this node forwarded to the owner of their partition.', (counters) => counters.forwarded);
    counter('shardlog_cluster_forward_batches_total', 'NATS requests that carried forwarded commands: one per owner node per event-loop tick.', (counters) => counters.forwardedBatches);
    counter('shardlog_cluster_forward_failures_total', 'Forwarded commands whose outcome is unknown (the owner did not answer).', (counters) => counters.forwardedFailed);
    counter('shardlog_cluster_handoffs_in_total', 'Partitions this node took over (caught up from JetStream, then served).', (counters) => counters.handoffsIn);
    counter('shardlog_cluster_handoffs_out_total', 'Partitions this node handed off gracefully.', (counters) => counters.handoffsOut);
    counter('shardlog_cluster_fenced_total', 'Partitions this node stopped serving because another node wrote to them.', (counters) => counters.fenced);
    counter('shardlog_cluster_head_messages_total', "Other nodes' published batches this node received to learn partition heads (only while a GET /events stream is open here).", (counters) => counters.headMessages);
    new Gauge({
      name: 'shardlog_cluster_head_followers',
      help: "GET /events streams on this node following every node's partition heads; at 0 the node receives no published batch.",
      registers,
      collect() {
        const current = status();
        if (current !== undefined) this.set(current.counters.headFollowers);
      },
    });
    new Gauge({
      name: 'shardlog_cluster_owned_partitions',
      help: 'Partitions this node serves now.',
      registers,
      collect() {
        const current = status();
        if (current !== undefined) this.set(current.owned);
      },
    });
    new Gauge({
      name: 'shardlog_cluster_last_handoff_seconds',
      help: 'How long the last partition this node took over took to catch up.',
      registers,
      collect() {
        const current = status();
        if (current !== undefined) this.set(current.counters.lastHandoffMs / 1_000);
      },
    });
  }

  /** One status call per scrape, shared by every projection metric. */
  private scrapeProjections(): Promise<ProjectionStatus[]> {
    const now = Date.now();
    if (this.projectionScrape === undefined || now - this.projectionScrape.at > 250) {
      this.projectionScrape = { at: now, statuses: this.projectionStatus().catch(() => []) };
    }
    return this.projectionScrape.statuses;
  }

  watchProjections(status: () => Promise<ProjectionStatus[]>): void {
    this.projectionStatus = status;
  }

  watchWal(sizes: () => { shard: number; bytes: number }[]): void {
    this.walSizes = sizes;
  }

  watchRelay(lag: () => { partition: number; head: number; published: number }[]): void {
    this.busLag = lag;
  }

  /** Pass as the runtime's `onBatch`. */
  readonly onBatch = (batch: BatchReport): void => {
    const shard = String(batch.shard);
    this.batchSize.observe({ shard }, batch.commands);
    this.batchSeconds.observe({ shard }, batch.durationMs / 1_000);
    if (batch.commitMs > 0) this.commitSeconds.observe({ shard }, batch.commitMs / 1_000);
    if (batch.events > 0) this.eventsAppended.inc({ shard }, batch.events);
  };

  watchShards(stats: () => ShardStats[]): void {
    this.shardStats = stats;
  }

  commandAnswered(aggregate: string, command: string, outcome: string, seconds: number): void {
    this.commands.inc({ aggregate, command, outcome });
    this.commandSeconds.observe({ aggregate, command }, seconds);
  }
}
