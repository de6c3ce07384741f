/** What every chaos drill is and reports. One drill per file in this folder; `run.ts` runs them. */
export interface Drill {
  name: string;
  /** The fault injected and the invariant checked, in one sentence. */
  summary: string;
  run(options: DrillOptions): Promise<DrillReport>;
}

export interface DrillOptions {
  /** The short version (CI): less load, shorter phases. */
  quick: boolean;
  /** Where the drill says what it is doing as it goes. */
  log: (line: string) => void;
}

export interface Invariant {
  name: string;
  holds: boolean;
  /** The figures behind the verdict, e.g. "1843 of 1843 acknowledged found once". */
  detail: string;
}

export interface DrillReport {
  /** Set when the drill could not run here (not root, no nats-server, …): why. */
  skipped?: string;
  invariants: Invariant[];
  figures: Record<string, number | string>;
}

export function skipped(reason: string): DrillReport {
  return { skipped: reason, invariants: [], figures: {} };
}

export function passed(report: DrillReport): boolean {
  return report.invariants.every((invariant) => invariant.holds);
}
