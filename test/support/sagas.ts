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
