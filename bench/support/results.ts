import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';

export interface ResultRow {
  name: string;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  [extra: string]: unknown;
}

export function machine() {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
  };
}

/** Writes bench/results/<suite>.json and prints the rows as a table. */
export function report(suite: string, results: ResultRow[], extra: Record<string, unknown>): void {
  console.table(
    results.map(({ name, opsPerSec, p50Ms, p99Ms }) => ({ name, 'ops/s': Math.round(opsPerSec), 'p50 ms': p50Ms, 'p99 ms': p99Ms })),
  );
  for (const [key, value] of Object.entries(extra)) console.log(`${key}:`, JSON.stringify(value, null, 2));
  const directory = new URL('../results/', import.meta.url);
  mkdirSync(directory, { recursive: true });
  writeFileSync(new URL(`${suite}.json`, directory), `${JSON.stringify({ suite, machine: machine(), results, ...extra }, null, 2)}\n`);
}

export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}
