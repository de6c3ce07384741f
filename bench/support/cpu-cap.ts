import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Caps a process (all its threads, and threads it starts later) to a fraction of one core with
 * a Linux CPU cgroup, so one box can stand in for several small machines. cgroup v1 writes
 * `cpu.cfs_quota_us` under /sys/fs/cgroup/cpu, v2 writes `cpu.max`; both need root.
 */
export interface CpuCap {
  /** How the cap is applied, for the report ("cgroup v1, 0.35 of a core per node"). */
  description: string;
  /** Moves the process into a cgroup of its own named `name`, capped at `fraction` of a core. */
  apply: (name: string, pid: number) => void;
  /** Removes the cgroups made (their processes must have exited). */
  release: () => void;
}

const periodUs = 100_000;

export function cpuCap(fraction: number): CpuCap {
  const uncapped = (why: string): CpuCap => ({ description: `uncapped (${why})`, apply: () => undefined, release: () => undefined });
  if (fraction <= 0) return uncapped('BENCH_NODE_CPU=0');
  if (process.platform !== 'linux') return uncapped('CPU cgroups need Linux');
  if (process.getuid?.() !== 0) return uncapped('CPU cgroups need root: run the bench as root to cap each node');
  const quotaUs = Math.round(fraction * periodUs);
  const v1 = '/sys/fs/cgroup/cpu';
  const v2 = '/sys/fs/cgroup';
  const made: string[] = [];
  const make = (root: string, name: string, limit: (dir: string) => void, pid: number) => {
    const dir = join(root, `shardlog-bench-${name}`);
    if (!existsSync(dir)) mkdirSync(dir);
    made.push(dir);
    limit(dir);
    writeFileSync(join(dir, 'cgroup.procs'), String(pid));
  };
  const release = () => {
    for (const dir of made.splice(0)) if (existsSync(dir)) rmdirSync(dir);
  };
  if (existsSync(join(v1, 'cpu.cfs_quota_us'))) {
    return {
      description: `cgroup v1 cpu.cfs_quota_us, ${fraction} of a core per node`,
      apply: (name, pid) =>
        make(v1, name, (dir) => {
          writeFileSync(join(dir, 'cpu.cfs_period_us'), String(periodUs));
          writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quotaUs));
        }, pid),
      release,
    };
  }
  if (existsSync(join(v2, 'cgroup.controllers'))) {
    return {
      description: `cgroup v2 cpu.max, ${fraction} of a core per node`,
      apply: (name, pid) => make(v2, name, (dir) => writeFileSync(join(dir, 'cpu.max'), `${quotaUs} ${periodUs}`), pid),
      release,
    };
  }
  return uncapped('no CPU cgroup controller mounted at /sys/fs/cgroup');
}
