/** Latency samples in milliseconds, summarised as percentiles. */
export class Latencies {
  private samples: number[] = [];

  record(ms: number): void {
    this.samples.push(ms);
  }

  get count(): number {
    return this.samples.length;
  }

  percentile(p: number): number {
    if (this.samples.length === 0) return Number.NaN;
    const sorted = Float64Array.from(this.samples).sort();
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  }

  summary(): { p50Ms: number; p99Ms: number; p999Ms: number } {
    return { p50Ms: round(this.percentile(50)), p99Ms: round(this.percentile(99)), p999Ms: round(this.percentile(99.9)) };
  }
}

export function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
