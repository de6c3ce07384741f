/**
 * CPU time of a process and of each of its threads, read from /proc (Linux only; elsewhere
 * every reading is undefined and the suites leave the column out). On this 2-core box a
 * throughput ratio is a ratio of CPU per operation as much as of anything else, and the split
 * by thread says which thread a closed loop waits on: one near a full core is the bound, none
 * near it means the loop waits on the round trip between them.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime + stime of one /proc stat file, in ms. The command name (field 2) may hold spaces: fields count from its closing parenthesis. */
function statCpuMs(file: string): number {
  const stat = readFileSync(file, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of proc(5); the slice starts at field 3.
  return ((Number(fields[11]) + Number(fields[12])) * 1_000) / clockTicks();
}

export interface CpuReading {
  at: number;
  processMs: number;
  /** Per thread id; the thread whose id is the process id is its main thread. */
  threadsMs: Map<number, number>;
}

export function readCpu(pid: number): CpuReading | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const threadsMs = new Map<number, number>();
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        threadsMs.set(Number(tid), statCpuMs(`/proc/${pid}/task/${tid}/stat`));
      } catch {
        // The thread ended between the listing and the read.
      }
    }
    return { at: performance.now(), processMs: statCpuMs(`/proc/${pid}/stat`), threadsMs };
  } catch {
    return undefined;
  }
}

export interface CpuSpent {
  /** CPU of the whole process per operation, µs. */
  cpuUsPerOp: number;
  /** Cores the process kept busy on average. */
  cores: number;
  /** The main thread's share of one core. */
  mainThreadCore: number;
  /** The other threads that used over 2% of a core, busiest first, as shares of one core (a shard, a projector, V8's helpers). */
  otherThreadsCore: number[];
}

/** What the process spent between two readings, over `ops` operations. */
export function cpuSpent(pid: number, before: CpuReading | undefined, after: CpuReading | undefined, ops: number): CpuSpent | undefined {
  if (before === undefined || after === undefined || ops <= 0) return undefined;
  const wallMs = after.at - before.at;
  const share = (ms: number) => Math.round((ms / wallMs) * 100) / 100;
  const others: number[] = [];
  for (const [tid, ms] of after.threadsMs) {
    if (tid === pid) continue;
    const spent = ms - (before.threadsMs.get(tid) ?? 0);
    if (spent / wallMs > 0.02) others.push(share(spent));
  }
  const processMs = after.processMs - before.processMs;
  return {
    cpuUsPerOp: Math.round((processMs * 1_000) / ops),
    cores: share(processMs),
    mainThreadCore: share((after.threadsMs.get(pid) ?? 0) - (before.threadsMs.get(pid) ?? 0)),
    otherThreadsCore: others.sort((a, b) => b - a),
  };
}
