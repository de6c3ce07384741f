import type { Invariant } from '../drill.ts';
import type { Deposit } from './deposit-load.ts';

/**
 * Every error answer is a problem a client can act on: a status from `allowed`, a SHARDLOG_
 * code, and Retry-After on a 503 (a refused connection while a node restarts counts apart).
 */
export function errorsAreRetryableProblems(answered: readonly Deposit[], allowed: ReadonlySet<number> = new Set([503])): Invariant {
  const errors = answered.filter((deposit) => deposit.status !== undefined && deposit.status !== 200);
  const wrong = errors.filter(
    (deposit) => !allowed.has(deposit.status!) || deposit.code?.startsWith('SHARDLOG_') !== true || (deposit.status === 503 && deposit.retryAfter === null),
  );
  return {
    name: `every error is ${[...allowed].join('/')} with a SHARDLOG_ code and Retry-After`,
    holds: wrong.length === 0,
    detail: wrong.length === 0 ? `${errors.length} errors, all retryable problems` : `${wrong.length} of ${errors.length} not, e.g. ${JSON.stringify(wrong[0])}`,
  };
}

/** Statuses counted and latency percentiles of the answered ones. */
export function latencyFigures(answered: readonly Deposit[]): Record<string, number> {
  const latencies = answered.flatMap((deposit) => (deposit.latencyMs === undefined ? [] : [deposit.latencyMs])).sort((a, b) => a - b);
  const at = (fraction: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * fraction))] ?? 0);
  return { 'p50 ms': at(0.5), 'p99 ms': at(0.99), 'max ms': Math.round(latencies.at(-1) ?? 0) };
}
