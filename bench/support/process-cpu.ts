import { readFileSync } from 'node:fs';

/** Linux counts process CPU time in clock ticks of 1/100 s (`getconf CLK_TCK`). */
const ticksPerSecond = 100;

/** CPU time (user + system, all threads) a process has used so far, in microseconds, from /proc/<pid>/stat. */
export function processCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1_000_000) / ticksPerSecond;
}

/** The CPU time a set of processes used between `start()` and the call it returns. */
export function cpuMeter(pids: number[]): () => number {
  const before = pids.map(processCpuMicros);
  return () => pids.reduce((sum, pid, index) => sum + processCpuMicros(pid) - before[index]!, 0);
}
