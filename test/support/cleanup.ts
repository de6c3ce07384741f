import { afterEach } from 'vitest';

export type CleanupStep = () => Promise<void> | void;

export interface Cleanup {
  /** Adds steps to run after the current test, whether it passed or failed. */
  push: (...steps: CleanupStep[]) => void;
}

/**
 * Registers an afterEach that undoes what each test set up (servers, runtimes, temp dirs),
 * last first. Every step runs even when an earlier one fails, so one failed close leaves no
 * server running; the failures are thrown once all steps have run.
 */
export function cleanupAfterEach(): Cleanup {
  let steps: CleanupStep[] = [];
  afterEach(async () => {
    const due = steps.reverse();
    steps = [];
    const failures: unknown[] = [];
    for (const step of due) {
      try {
        await step();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) throw new AggregateError(failures, `${failures.length} cleanup steps failed`);
  });
  return { push: (...added) => void steps.push(...added) };
}
