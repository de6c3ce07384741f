import { describe, expect, it } from 'vitest';
import { ChangeSignal } from '../../runtime/cluster/change-signal.ts';

describe('the change signal', () => {
  it('wakes every waiter on notify, long before their timeout', async () => {
    const signal = new ChangeSignal();
    const woken: number[] = [];
    const waits = [0, 1, 2].map((index) => signal.wait(600_000).then(() => woken.push(index)));
    signal.notify();
    await Promise.all(waits);
    expect(woken.sort()).toEqual([0, 1, 2]);
  });

  it('lets a waiter go after its timeout when nothing changes', async () => {
    const signal = new ChangeSignal();
    await expect(signal.wait(1)).resolves.toBeUndefined();
  });
});
