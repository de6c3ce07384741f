import type { PendingCommand, SagaInputs } from '../define/saga-actor.ts';
import { RejectedError, ShardlogError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { SagaActivity } from '../protocol.ts';
import type { DispatchResult } from '../runtime.ts';

export interface SagaOutboxOptions {
  /** Runs one step's command with its deterministic id. */
  sendStep(saga: string, correlationId: string, command: PendingCommand): Promise<DispatchResult>;
  /** Tells an instance how one of its steps ended. */
  settle(saga: string, correlationId: string, outcome: SagaInputs['settle']): Promise<unknown>;
  /** Whether this node still serves the partition (it stops retrying for one it lost). */
  owns(partition: number): boolean;
  logger: Logger;
}

interface Outbox {
  partition: number;
  saga: string;
  correlationId: string;
  /** Steps this node is sending or has sent; a step drops out once the instance no longer lists it. */
  steps: Set<number>;
}

const maxBackoffMs = 5_000;

/**
 * Sends the commands saga instances decided, from their outbox as each commit left it. A
 * step's id is `<saga>/<correlationId>/<step>`, so sending it again (after a crash, on the
 * node a partition moved to) runs it at most once. The outcome goes back to the instance:
 * events it caused arrive through the saga router, which settles the step; a refusal, a
 * command that could not run, or one with no events is settled here.
 */
export class SagaOutbox {
  private readonly outboxes = new Map<string, Outbox>();
  private closed = false;

  constructor(private readonly options: SagaOutboxOptions) {}

  /** An instance's outbox as a commit (or a start-up scan) left it. */
  update(activity: Pick<SagaActivity, 'stream' | 'partition' | 'saga' | 'pending'>): void {
    const { stream, partition, saga, pending } = activity;
    let outbox = this.outboxes.get(stream);
    if (pending.length === 0) {
      this.outboxes.delete(stream);
      return;
    }
    if (outbox === undefined) {
      outbox = { partition, saga, correlationId: stream.slice(saga.length + 1), steps: new Set() };
      this.outboxes.set(stream, outbox);
    }
    const live = new Set(pending.map((command) => command.step));
    for (const step of outbox.steps) if (!live.has(step)) outbox.steps.delete(step);
    for (const command of pending) {
      if (outbox.steps.has(command.step)) continue;
      outbox.steps.add(command.step);
      void this.send(stream, outbox, command, 0);
    }
  }

  /** The partition left this node: its new owner sends what is left. */
  dropPartition(partition: number): void {
    for (const [stream, outbox] of this.outboxes) if (outbox.partition === partition) this.outboxes.delete(stream);
  }

  /** Commands decided and not yet settled, as this node tracks them. */
  get pending(): number {
    let count = 0;
    for (const outbox of this.outboxes.values()) count += outbox.steps.size;
    return count;
  }

  close(): void {
    this.closed = true;
  }

  private stillMine(stream: string, outbox: Outbox, step: number): boolean {
    return !this.closed && this.outboxes.get(stream) === outbox && outbox.steps.has(step) && this.options.owns(outbox.partition);
  }

  private async send(stream: string, outbox: Outbox, command: PendingCommand, attempt: number): Promise<void> {
    let outcome: SagaInputs['settle'] | undefined;
    try {
      const result = await this.options.sendStep(outbox.saga, outbox.correlationId, command);
      if (result.events.length === 0) outcome = { step: command.step, ok: true };
    } catch (error) {
      if (error instanceof RejectedError) {
        const { code, detail, ...data } = error.data as { code: string; detail: string };
        outcome = { step: command.step, ok: false, code, detail, data };
      } else if (error instanceof ShardlogError && !error.retryable) {
        outcome = { step: command.step, ok: false, code: error.code, detail: error.message, data: {} };
      } else {
        if (!this.stillMine(stream, outbox, command.step)) return;
        const delay = Math.min(maxBackoffMs, 50 * 2 ** attempt);
        if (delay >= maxBackoffMs) this.options.logger.warn({ err: error, saga: stream, step: command.step }, 'a saga command keeps failing; retrying');
        setTimeout(() => void this.send(stream, outbox, command, attempt + 1), delay).unref();
        return;
      }
    }
    if (outcome !== undefined) await this.settle(stream, outbox, outcome, 0);
  }

  private async settle(stream: string, outbox: Outbox, outcome: SagaInputs['settle'], attempt: number): Promise<void> {
    try {
      await this.options.settle(outbox.saga, outbox.correlationId, outcome);
    } catch (error) {
      if (!this.stillMine(stream, outbox, outcome.step)) return;
      const delay = Math.min(maxBackoffMs, 50 * 2 ** attempt);
      if (delay >= maxBackoffMs) this.options.logger.warn({ err: error, saga: stream, step: outcome.step }, 'settling a saga step keeps failing; retrying');
      setTimeout(() => void this.settle(stream, outbox, outcome, attempt + 1), delay).unref();
    }
  }
}
