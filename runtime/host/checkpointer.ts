import { Piscina } from 'piscina';
import type { CheckpointResult, CheckpointTask } from '../checkpoint/worker.ts';
import type { Logger } from '../logger.ts';

const entry = new URL(import.meta.url.endsWith('.ts') ? '../checkpoint/ts-entry.mjs' : '../checkpoint/worker.js', import.meta.url).href;

/**
 * Runs WAL checkpoints of every shard log on one background thread, one file after another,
 * every `intervalMs`. Shard threads keep a large auto-checkpoint only as a backstop.
 */
export class Checkpointer {
  private readonly pool: Piscina<CheckpointTask, CheckpointResult | null>;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private failures = 0;

  constructor(
    private readonly files: readonly string[],
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {
    this.pool = new Piscina({ filename: entry, minThreads: 1, maxThreads: 1, idleTimeout: Number.POSITIVE_INFINITY });
    this.pool.on('error', (error: unknown) => this.logger.warn({ err: error }, 'checkpointer thread died; it is restarted'));
    this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.running = this.pass().finally(() => {
        this.running = undefined;
        if (this.timer !== undefined) this.schedule();
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    for (const file of this.files) {
      try {
        await this.pool.run({ type: 'checkpoint', file });
        this.failures = 0;
      } catch (error) {
        // A checkpoint that fails costs nothing but WAL growth; the shard's backstop still runs.
        this.failures += 1;
        if (this.failures === 1 || this.failures % 100 === 0) this.logger.warn({ err: error, file, failures: this.failures }, 'WAL checkpoint failed');
      }
    }
  }

  /** Stops, waits for the pass in progress, closes its connections, then its thread. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    await this.pool.run({ type: 'close' }).catch(() => undefined);
    await this.pool.destroy();
  }
}
