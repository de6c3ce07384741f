import type { DispatchResult, ShardlogError } from '../runtime/index.ts';

export type SettledOutcome =
  | { status: 'committed'; aggregate: string; id: string; result: DispatchResult }
  | { status: 'rejected' | 'failed'; error: ShardlogError };

export type AsyncOutcome = { status: 'pending' } | SettledOutcome;

/**
 * Commands accepted with `Prefer: respond-async`, until their outcome is known and for a while
 * after. Bounded: the oldest entries go first. Committed and rejected outcomes also live in
 * the shard logs, so they stay readable after this node restarts or forgets them.
 */
export class AsyncCommands {
  private readonly outcomes = new Map<string, AsyncOutcome>();

  constructor(private readonly capacity = 100_000) {}

  track(target: { commandId: string; aggregate: string; id: string }, running: Promise<DispatchResult>, settled: (outcome: SettledOutcome) => void): void {
    const { commandId, aggregate, id } = target;
    this.remember(commandId, { status: 'pending' });
    running.then(
      (result) => {
        const outcome: SettledOutcome = { status: 'committed', aggregate, id, result };
        this.remember(commandId, outcome);
        settled(outcome);
      },
      (error: ShardlogError) => {
        const outcome: SettledOutcome = { status: error.code === 'SHARDLOG_REJECTED' ? 'rejected' : 'failed', error };
        this.remember(commandId, outcome);
        settled(outcome);
      },
    );
  }

  get(commandId: string): AsyncOutcome | undefined {
    return this.outcomes.get(commandId);
  }

  private remember(commandId: string, outcome: AsyncOutcome): void {
    // A committed or rejected outcome is final: a later request reusing the key (with the
    // same body, or another one) must not hide it.
    const known = this.outcomes.get(commandId);
    if (known !== undefined && (known.status === 'committed' || known.status === 'rejected')) return;
    if (outcome.status === 'failed' && outcome.error.code === 'SHARDLOG_IDEMPOTENCY_KEY_REUSED') return;
    this.outcomes.delete(commandId);
    this.outcomes.set(commandId, outcome);
    if (this.outcomes.size > this.capacity) {
      const oldest = this.outcomes.keys().next().value;
      if (oldest !== undefined) this.outcomes.delete(oldest);
    }
  }
}
