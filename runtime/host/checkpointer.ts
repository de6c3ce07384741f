import { Piscina } from 'piscina';
import type { CheckpointResult, CheckpointTask } from '../checkpoint/worker.ts';
import type { Logger } from '../logger.ts';

/** Past this much WAL a shard log is reported as held back (by default). */
export const defaultWalWarnBytes = 64 * 2 ** 20;

/** One shard log's WAL as of the checkpointer's last pass over it. */
export interface WalSize {
  shard: number;
  bytes: number;
}

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

const entry = new URL(import.meta.url.endsWith('.ts') ? '../checkpoint/ts-entry.mjs' : '../checkpoint/worker.js', import.meta.url).href;

/**
 * Runs WAL checkpoints of the shard logs on one background thread, one file after another,
 * every `intervalMs` while any log has WAL to copy: a log is checkpointed after it was
 * written (`written`) until a pass has copied all of its WAL, and an idle node runs no
 * pass at all (a timer every 50 ms was most of an idle node's CPU). Shard threads keep a
 * large auto-checkpoint only as a backstop.
 * After each checkpoint it records the log's WAL size, and warns once when a WAL passes
 * `walWarnBytes` (a reader holding an old snapshot is the usual cause: no checkpoint can
 * reset the WAL past it), then says once when it is back under.
 */
export class Checkpointer {
  private readonly pool: Piscina<CheckpointTask, CheckpointResult | null>;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private failures = 0;
  private closed = false;
  /** Shards written since a pass last copied all of their WAL (every shard at start: its WAL may hold frames from before). */
  private readonly dirty: boolean[];
  private readonly walBytes: number[];
  private readonly walOverBound: boolean[];

  constructor(
    private readonly files: readonly string[],
    private readonly intervalMs: number,
    private readonly logger: Logger,
    private readonly walWarnBytes = defaultWalWarnBytes,
  ) {
    this.walBytes = files.map(() => 0);
    this.walOverBound = files.map(() => false);
    this.dirty = files.map(() => true);
    this.pool = new Piscina({ filename: entry, minThreads: 1, maxThreads: 1, idleTimeout: Number.POSITIVE_INFINITY });
    this.pool.on('error', (error: unknown) => this.logger.warn({ err: error }, 'checkpointer thread died; it is restarted'));
    this.schedule();
  }

  /** A shard committed to its log: checkpoint it at the next pass. */
  written(shard: number): void {
    if (this.dirty[shard] === true) return;
    this.dirty[shard] = true;
    if (this.timer === undefined && this.running === undefined && !this.closed) this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.pass().finally(() => {
        this.running = undefined;
        if (!this.closed && this.dirty.includes(true)) this.schedule();
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    for (const [shard, file] of this.files.entries()) {
      if (this.dirty[shard] !== true) continue;
      this.dirty[shard] = false;
      try {
        const result = await this.pool.run({ type: 'checkpoint', file });
        this.failures = 0;
        if (result !== null && result.walBytes !== null) this.recordWal(shard, result.walBytes);
        // Frames left behind (a reader's snapshot, the shard's own checkpoint holding the lock): try again next pass.
        if (result === null || result.walBytes === null || result.checkpointed < result.walFrames) this.dirty[shard] = true;
      } catch (error) {
        this.dirty[shard] = true;
        // A checkpoint that fails costs nothing but WAL growth; the shard's backstop still runs.
        this.failures += 1;
        if (this.failures === 1 || this.failures % 100 === 0) this.logger.warn({ err: error, file, failures: this.failures }, 'WAL checkpoint failed');
      }
    }
  }

  private recordWal(shard: number, bytes: number): void {
    this.walBytes[shard] = bytes;
    const over = bytes > this.walWarnBytes;
    if (over === this.walOverBound[shard]) return;
    this.walOverBound[shard] = over;
    if (over) {
      this.logger.warn(
        { shard, walBytes: bytes, boundBytes: this.walWarnBytes },
        `a reader holds an old snapshot: the WAL of shard ${shard} is ${mib(bytes)} MiB and cannot be checkpointed`,
      );
    } else {
      this.logger.info({ shard, walBytes: bytes, boundBytes: this.walWarnBytes }, `the WAL of shard ${shard} is back under ${mib(this.walWarnBytes)} MiB (${mib(bytes)} MiB)`);
    }
  }

  /** Each shard log's WAL as of the last checkpoint of it (0 before the first). */
  walSizes(): WalSize[] {
    return this.walBytes.map((bytes, shard) => ({ shard, bytes }));
  }

  /** Stops, waits for the pass in progress, closes its connections, then its thread. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    await this.pool.run({ type: 'close' }).catch(() => undefined);
    await this.pool.destroy();
  }
}
