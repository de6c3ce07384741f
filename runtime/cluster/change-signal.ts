/**
 * Wakes everyone waiting for the cluster's local state to change (an assignment arrives, a
 * partition starts or stops being served, a command finishes). A waiter also wakes after its
 * timeout, so a missed notification costs a short delay, never a hang.
 */
export class ChangeSignal {
  private readonly waiters = new Set<() => void>();

  wait(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
