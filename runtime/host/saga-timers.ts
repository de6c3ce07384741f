import type { Logger } from '../logger.ts';
import type { SagaActivity } from '../protocol.ts';

export interface SagaTimersOptions {
  /** Fires one timer of an instance: the instance acts only if the timer is still set for that time. */
  fire(saga: string, correlationId: string, name: string, due: number): Promise<unknown>;
  owns(partition: number): boolean;
  logger: Logger;
}

interface InstanceTimers {
  partition: number;
  saga: string;
  correlationId: string;
  timers: Record<string, number>;
}

/** setTimeout takes at most 2^31 − 1 ms; a later timer is re-armed when that one ends. */
const maxDelayMs = 2 ** 31 - 1;
const maxBackoffMs = 5_000;

/**
 * The timers of the saga instances this node serves, as their commits left them, in a heap
 * by due time with one setTimeout for the earliest. A timer that is due sends `fire` to its
 * instance; the instance's own record decides whether it still stands, so a timer fires once
 * however often it is sent (after a restart, on the node its partition moved to).
 */
export class SagaTimers {
  private readonly instances = new Map<string, InstanceTimers>();
  /** [due, stream, name]; entries whose timer changed since are skipped when they surface. */
  private readonly heap: [number, string, string][] = [];
  private armed: NodeJS.Timeout | undefined;
  private armedFor = Infinity;
  private closed = false;

  constructor(private readonly options: SagaTimersOptions) {}

  update(activity: Pick<SagaActivity, 'stream' | 'partition' | 'saga' | 'timers'>): void {
    const { stream, partition, saga, timers } = activity;
    if (Object.keys(timers).length === 0) {
      this.instances.delete(stream);
      return;
    }
    const before = this.instances.get(stream)?.timers ?? {};
    this.instances.set(stream, { partition, saga, correlationId: stream.slice(saga.length + 1), timers: { ...timers } });
    for (const [name, due] of Object.entries(timers)) if (before[name] !== due) this.push([due, stream, name]);
    this.arm();
  }

  dropPartition(partition: number): void {
    for (const [stream, instance] of this.instances) if (instance.partition === partition) this.instances.delete(stream);
  }

  /** Timers set on served instances. */
  get count(): number {
    let count = 0;
    for (const instance of this.instances.values()) count += Object.keys(instance.timers).length;
    return count;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.armed);
  }

  private arm(): void {
    const first = this.heap[0];
    if (this.closed || first === undefined || first[0] >= this.armedFor) return;
    clearTimeout(this.armed);
    this.armedFor = first[0];
    this.armed = setTimeout(() => this.fireDue(), Math.min(maxDelayMs, Math.max(0, first[0] - Date.now()))).unref();
  }

  private fireDue(): void {
    this.armed = undefined;
    this.armedFor = Infinity;
    const now = Date.now();
    while (this.heap.length > 0 && this.heap[0]![0] <= now) {
      const [due, stream, name] = this.pop()!;
      const instance = this.instances.get(stream);
      if (instance?.timers[name] !== due) continue;
      delete instance.timers[name];
      void this.fire(stream, instance, name, due, 0);
    }
    this.arm();
  }

  private async fire(stream: string, instance: InstanceTimers, name: string, due: number, attempt: number): Promise<void> {
    try {
      await this.options.fire(instance.saga, instance.correlationId, name, due);
    } catch (error) {
      if (this.closed || !this.options.owns(instance.partition)) return;
      const delay = Math.min(maxBackoffMs, 50 * 2 ** attempt);
      if (delay >= maxBackoffMs) this.options.logger.warn({ err: error, saga: stream, timer: name }, 'firing a saga timer keeps failing; retrying');
      setTimeout(() => void this.fire(stream, instance, name, due, attempt + 1), delay).unref();
    }
  }

  private push(entry: [number, string, string]): void {
    const heap = this.heap;
    heap.push(entry);
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (heap[parent]![0] <= entry[0]) break;
      heap[index] = heap[parent]!;
      index = parent;
    }
    heap[index] = entry;
  }

  private pop(): [number, string, string] | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]![0] < heap[left]![0] ? right : left;
      if (heap[child]![0] >= last[0]) break;
      heap[index] = heap[child]!;
      index = child;
    }
    heap[index] = last;
    return top;
  }
}
