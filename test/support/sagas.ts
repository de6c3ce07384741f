import type { Runtime, SagaView } from '../../runtime/index.ts';
import { waitFor } from './wait-for.ts';

/** Waits until a saga instance has finished and sent every command it decided; returns it. */
export async function sagaDone(runtime: Runtime, saga: string, correlationId: string, timeoutMs = 20_000): Promise<SagaView> {
  let view: SagaView | undefined;
  await waitFor(
    async () => {
      view = await runtime.sagas.get(saga, correlationId);
      return view !== undefined && view.status !== 'running' && view.pending.commands.length === 0;
    },
    { timeoutMs },
  );
  return view!;
}

/**
 * Waits until the example app's sagas have nothing left to do on this node: every committed
 * event delivered, no instance running, every command they decided settled. Tests that
 * compare a log or a view with what they wrote wait for this first, since placing an order
 * starts a saga that keeps writing.
 */
export async function sagasIdle(runtime: Runtime, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    async () => {
      const backlog = runtime.sagas.backlog();
      if (backlog.undelivered > 0 || backlog.pendingCommands > 0) return false;
      return (await runtime.sagas.list({ status: 'running', limit: 1 })).length === 0;
    },
    { timeoutMs },
  );
}
