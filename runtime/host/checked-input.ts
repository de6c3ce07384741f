import { makeError } from '../errors.ts';
import { assertValidId } from '../partitioning.ts';

/** An integer query parameter within bounds, or SHARDLOG_INVALID_QUERY naming it. */
export function checkedCount(name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw makeError('SHARDLOG_INVALID_QUERY', `${name} must be an integer from ${min} to ${max}`, { [name]: value });
  }
  return value;
}

/** A positive integer setting (its default when absent), or SHARDLOG_INVALID_CONFIG. */
export function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const chosen = value ?? fallback;
  if (!Number.isSafeInteger(chosen) || chosen < 1) throw makeError('SHARDLOG_INVALID_CONFIG', `${name} must be a positive integer, got ${String(value)}`);
  return chosen;
}

export function assertValidCommandId(commandId: string): void {
  try {
    assertValidId(commandId);
  } catch {
    throw makeError('SHARDLOG_INVALID_INPUT', 'commandId must be 1 to 256 characters with no control characters', { issues: [] });
  }
}
