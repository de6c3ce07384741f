export interface PositionWaiter {
  partition: number;
  seq: number;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * Read-your-writes waits of one projection, per partition in seq order, so each checkpoint
 * move settles exactly the waits it satisfies without scanning the others: thousands may be
 * waiting when the projection falls behind, and that is when scanning them all would hurt.
 */
export class PositionWaiters {
  private readonly byPartition = new Map<number, PositionWaiter[]>();

  add(waiter: PositionWaiter): void {
    let list = this.byPartition.get(waiter.partition);
    if (list === undefined) {
      list = [];
      this.byPartition.set(waiter.partition, list);
    }
    let low = 0;
    let high = list.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (list[middle]!.seq <= waiter.seq) low = middle + 1;
      else high = middle;
    }
    list.splice(low, 0, waiter);
  }

  remove(waiter: PositionWaiter): void {
    const list = this.byPartition.get(waiter.partition);
    const index = list?.indexOf(waiter) ?? -1;
    if (index >= 0) list!.splice(index, 1);
  }

  /** Resolves every wait for this partition at or below `seq`. */
  reached(partition: number, seq: number): void {
    const list = this.byPartition.get(partition);
    if (list === undefined) return;
    let count = 0;
    while (count < list.length && list[count]!.seq <= seq) count++;
    for (const waiter of list.splice(0, count)) waiter.resolve();
  }

  rejectPartition(partition: number, error: Error): void {
    const list = this.byPartition.get(partition) ?? [];
    this.byPartition.delete(partition);
    for (const waiter of list) waiter.reject(error);
  }

  rejectAll(error: Error): void {
    const all = [...this.byPartition.values()].flat();
    this.byPartition.clear();
    for (const waiter of all) waiter.reject(error);
  }
}
