import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { decodeStored } from '../codec.ts';
import type { BusEvent, PartitionBatch } from '../bus/bus-event.ts';
import type { App } from '../define/app.ts';
import type { AnyProjection } from '../define/projection.ts';
import { formatPosition } from '../partitioning.ts';
import type { DeadLetter, ProjectionStatus, RebuildStatus } from './messages.ts';
import { Projector } from './projector.ts';
import type { ShardFileReader } from './shard-file-reader.ts';
import { viewFile } from './view-store.ts';

const pageSize = 4_000;
/** Events one step applies before yielding, so calls and new heads are not kept waiting. */
const eventsPerStep = 16_000;

interface Rebuild {
  projector: Projector;
  startedAt: number;
  total: number;
}

/** Where the serving projector's events come from when not from the shard files. */
export interface ServingFeed {
  start(): Promise<void>;
  restart(): void;
  suspend(): Promise<void>;
  close(): Promise<void>;
  readonly halted: boolean;
  /** Not yet past the stream's tail as of its start. */
  readonly catchingUp: boolean;
}

export interface RunnerHooks {
  /** Reads of this view must stop before its file is replaced; resolves once they have. */
  closeReaders(name: string): Promise<void>;
  switched(name: string, file: string, checkpoints: number[]): void;
  /** The view file could not be written (disk full, I/O error): nothing was applied; tried again next step. */
  storageFailed(name: string, error: unknown): void;
}

/**
 * Keeps one projection caught up with the shard logs (the embedded bus): reads each
 * partition past its checkpoint in pages and applies them. Also runs its rebuild: a second
 * projector on a new file from position 0, swapped in once it has caught up.
 */
export class ProjectionRunner {
  serving: Projector;
  private rebuildJob: Rebuild | undefined;
  private lastRebuild: ProjectionStatus['lastRebuild'] = null;
  private readonly behindSince = new Map<number, number>();
  private reported = new Map<number, number>();
  private olderVersionsDropped = false;
  /** Set when a JetStream feed, not this runner's file reads, keeps the serving projector current. */
  feed: ServingFeed | undefined;
  /** The shard files hold only some partitions (a cluster node): after a rebuild the feed reads the whole stream, applying what the files lacked. */
  partialLogs = false;
  /** Whether this node runs the projection (a cluster places each on one node); a stopped one applies nothing. */
  running = true;

  constructor(
    private readonly app: App,
    readonly projection: AnyProjection,
    private readonly dataDir: string,
    private readonly reader: ShardFileReader,
    private readonly hooks: RunnerHooks,
  ) {
    this.serving = new Projector(app, projection, this.file);
  }

  get file(): string {
    return viewFile(this.dataDir, this.projection.name, this.projection.version);
  }

  private get rebuildFile(): string {
    return `${this.file.slice(0, -'.db'.length)}.rebuilding.db`;
  }

  /** Notes when a partition fell behind, for the lag in milliseconds. */
  noteHeads(heads: ReadonlyMap<number, number>, partitions: Iterable<number>): void {
    if (!this.running) return;
    const now = Date.now();
    for (const partition of partitions) {
      if ((heads.get(partition) ?? 0) > this.serving.checkpoint(partition) && !this.behindSince.has(partition)) this.behindSince.set(partition, now);
    }
  }

  /** Applies up to one step's worth of events; returns whether it did any work. */
  async step(heads: ReadonlyMap<number, number>): Promise<boolean> {
    if (!this.running) return false;
    let budget = eventsPerStep;
    if (this.feed === undefined) budget -= await this.catchUp(this.serving, heads, budget);
    for (const [partition] of this.behindSince) {
      if (this.serving.checkpoint(partition) >= (heads.get(partition) ?? 0)) this.behindSince.delete(partition);
    }
    if (this.rebuildJob !== undefined && budget > 0) {
      budget -= await this.catchUp(this.rebuildJob.projector, heads, budget);
      if (this.caughtUp(this.rebuildJob.projector, heads)) await this.finishRebuild();
    }
    if (!this.olderVersionsDropped && this.caughtUp(this.serving, heads)) this.dropOlderVersions();
    return budget < eventsPerStep;
  }

  /** Reads every partition behind its head (a page each, within the budget) and applies them in one transaction. */
  private async catchUp(projector: Projector, heads: ReadonlyMap<number, number>, budget: number): Promise<number> {
    let used = 0;
    while (used < budget && projector.halted === undefined) {
      const batches: PartitionBatch[] = [];
      this.reader.together(() => {
        for (const [partition, head] of heads) {
          if (used >= budget) break;
          const checkpoint = projector.checkpoint(partition);
          if (checkpoint >= head) continue;
          const events = this.reader.read(partition, checkpoint, Math.min(pageSize, budget - used));
          if (events.length === 0) continue;
          used += events.length;
          batches.push({ partition, firstSeq: events[0]!.seq, events });
        }
      });
      if (batches.length === 0) break;
      if ((await projector.applyAll(batches)).includes('storage-failed')) {
        this.hooks.storageFailed(this.projection.name, projector.lastStorageFailure);
        break;
      }
    }
    return used;
  }

  private caughtUp(projector: Projector, heads: ReadonlyMap<number, number>): boolean {
    if (projector.halted !== undefined) return false;
    for (const [partition, head] of heads) if (projector.checkpoint(partition) < head) return false;
    return true;
  }

  /** Checkpoints that moved since the last call, as [partition, seq, …]. */
  takeProgress(): number[] {
    const marks: number[] = [];
    for (const [partition, seq] of this.serving.allCheckpoints()) {
      if (this.reported.get(partition) !== seq) {
        marks.push(partition, seq);
        this.reported.set(partition, seq);
      }
    }
    return marks;
  }

  checkpointMarks(): number[] {
    return [...this.serving.allCheckpoints()].flat();
  }

  startRebuild(heads: ReadonlyMap<number, number>): RebuildStatus {
    if (this.rebuildJob !== undefined) return this.rebuildStatus(this.rebuildJob)!;
    removeDatabase(this.rebuildFile);
    const projector = new Projector(this.app, this.projection, this.rebuildFile);
    let total = 0;
    for (const head of heads.values()) total += head;
    this.rebuildJob = { projector, startedAt: Date.now(), total };
    return this.rebuildStatus(this.rebuildJob)!;
  }

  private async finishRebuild(): Promise<void> {
    const job = this.rebuildJob!;
    await this.hooks.closeReaders(this.projection.name);
    await this.feed?.suspend();
    // The new build has applied at least everything the old one had from the stream, unless
    // the files it read lack partitions: then the whole stream is read again (checkpoints skip what it has).
    const streamPosition = this.partialLogs ? 0 : this.serving.streamPosition();
    this.serving.close();
    job.projector.closeForRename();
    removeDatabase(this.file);
    renameSync(this.rebuildFile, this.file);
    this.serving = new Projector(this.app, this.projection, this.file);
    this.serving.recordStreamPosition(streamPosition);
    void this.feed?.start();
    this.rebuildJob = undefined;
    this.reported = new Map();
    const seconds = (Date.now() - job.startedAt) / 1_000;
    this.lastRebuild = { finishedAt: new Date().toISOString(), events: job.projector.applied, seconds };
    this.hooks.switched(this.projection.name, this.file, this.checkpointMarks());
  }

  /** Files of earlier versions of this projection are dropped once this version has caught up. */
  private dropOlderVersions(): void {
    this.olderVersionsDropped = true;
    const prefix = `${this.projection.name}.v`;
    const current = `${prefix}${this.projection.version}.`;
    for (const entry of readdirSync(join(this.dataDir, 'views'))) {
      if (entry.startsWith(prefix) && !entry.startsWith(current) && /^v\d+\.db/.test(entry.slice(this.projection.name.length + 1))) {
        rmSync(join(this.dataDir, 'views', entry), { force: true });
      }
    }
  }

  status(heads: ReadonlyMap<number, number>): ProjectionStatus {
    let checkpoint = 0;
    let head = 0;
    for (const seq of this.serving.allCheckpoints().values()) checkpoint += seq;
    for (const seq of heads.values()) head += seq;
    const oldest = Math.min(...this.behindSince.values());
    const halted = this.serving.halted ?? null;
    return {
      name: this.projection.name,
      version: this.projection.version,
      state: halted !== null ? 'halted' : this.catchingUp || head > checkpoint ? 'catching-up' : 'live',
      checkpoint,
      head,
      lagEvents: Math.max(0, head - checkpoint),
      lagMs: Number.isFinite(oldest) && head > checkpoint ? Date.now() - oldest : 0,
      deadLetters: this.serving.deadLetterCount(),
      halted,
      applied: this.serving.applied,
      rebuild: this.rebuildStatus(this.rebuildJob),
      lastRebuild: this.lastRebuild,
    };
  }

  private rebuildStatus(job: Rebuild | undefined): RebuildStatus | null {
    if (job === undefined) return null;
    let done = 0;
    for (const seq of job.projector.allCheckpoints().values()) done += seq;
    const seconds = (Date.now() - job.startedAt) / 1_000;
    const eventsPerSecond = seconds > 0 ? Math.round(done / seconds) : 0;
    return {
      startedAt: new Date(job.startedAt).toISOString(),
      total: job.total,
      done,
      eventsPerSecond,
      etaSeconds: eventsPerSecond > 0 ? Math.max(0, Math.round((job.total - done) / eventsPerSecond)) : null,
      halted: job.projector.halted ?? null,
    };
  }

  deadLetters(limit: number): DeadLetter[] {
    return this.serving.deadLetters(limit).map((row) => {
      const event = decodeStored<BusEvent>(row.event);
      return {
        id: row.id,
        position: formatPosition(row.partition, row.seq),
        aggregate: event.aggregate,
        aggregateId: event.id,
        type: event.type,
        data: event.data,
        error: row.error,
        attempts: row.attempts,
        parkedAt: new Date(row.parked_at).toISOString(),
      };
    });
  }

  /** A halt was lifted (dead letter retried or skipped): a paused feed fetches again from where it stopped. */
  resumed(): void {
    if (this.feed?.halted === true && this.serving.halted === undefined) this.feed.restart();
  }

  get catchingUp(): boolean {
    return this.feed?.catchingUp ?? false;
  }

  /**
   * The projection moved to another node: stop applying (its view file and checkpoints stay,
   * so taking it back later resumes from them) and drop a rebuild under way.
   */
  async stopRunning(): Promise<void> {
    this.running = false;
    const feed = this.feed;
    this.feed = undefined;
    await feed?.close();
    this.behindSince.clear();
    if (this.rebuildJob !== undefined) {
      this.rebuildJob.projector.close();
      this.rebuildJob = undefined;
      removeDatabase(this.rebuildFile);
    }
  }

  async close(): Promise<void> {
    await this.feed?.close();
    this.closeFiles();
  }

  /** Synchronous, for a thread on its way out: its databases must be closed before it exits. */
  closeFiles(): void {
    this.serving.close();
    this.rebuildJob?.projector.close();
  }
}

function removeDatabase(file: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) if (existsSync(file + suffix)) rmSync(file + suffix, { force: true });
}
