import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/support/free-port.ts';
import { makeTempDir } from '../../test/support/temp-dir.ts';
import { partitionOf, shardOf, streamName } from '../../runtime/partitioning.ts';
import type { Drill, DrillReport, Invariant } from './drill.ts';
import { postCommand, type CommandAnswer } from './support/command.ts';
import { pollUntil } from './support/poll.ts';
import { readiness } from './support/readiness.ts';
import { ShardlogProcess } from './support/shardlog-process.ts';

const probeNode = fileURLToPath(new URL('./support/probe-node.ts', import.meta.url));
// More than 2 crashes within 60 s open the circuit (the default is 5 in 60 s): a restart
// takes seconds on a loaded machine, so the window must hold several of them.
const windowMs = 60_000;
const maxCrashes = 2;

/** The first `count` probe ids (with `prefix`) that live on `shard` of 2 (8 partitions). */
function idsOnShard(shard: number, prefix: string, count: number): string[] {
  const ids: string[] = [];
  for (let index = 0; ids.length < count; index++) {
    const id = `${prefix}-${index}`;
    if (shardOf(partitionOf(streamName('probe', id), 8), 2) === shard) ids.push(id);
  }
  return ids;
}

/** Touches on the healthy shard, without pause, until stopped: what "the others keep serving" is measured by. */
class HealthyLoad {
  readonly answers: CommandAnswer[] = [];
  private running = true;
  private readonly workers: Promise<void>[];
  private next = 0;

  constructor(url: string, ids: readonly string[]) {
    this.workers = ids.map(async (id) => {
      while (this.running) this.answers.push(await postCommand(url, { aggregate: 'probe', id, command: 'touch' }, {}, `healthy-${id}-${this.next++}`));
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }

  failures(): CommandAnswer[] {
    return this.answers.filter((answer) => answer.status !== 200);
  }
}

function summary(answers: readonly CommandAnswer[]): string {
  const counts = new Map<string, number>();
  for (const answer of answers) {
    const label = answer.status === undefined ? 'no answer' : answer.code === undefined ? String(answer.status) : `${answer.status} ${answer.code}`;
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return [...counts].map(([label, count]) => `${label}: ${count}`).join(', ');
}

/**
 * One shard thread runs out of memory, then crash-loops: the other shard keeps serving,
 * nothing it acknowledged is lost, the circuit opens (fast 503s, /readyz 503), and the shard
 * comes back by itself.
 */
export const shardCrash: Drill = {
  name: 'shard-crash',
  summary: 'a shard thread out of memory, then crash-looping, beside a healthy one',
  async run({ quick, log }): Promise<DrillReport> {
    const data = makeTempDir();
    const node = new ShardlogProcess(data.dir, await freePort(), ['--memory-mb', '64', '--window-ms', String(windowMs), '--max-crashes', String(maxCrashes)], probeNode);
    const victim = idsOnShard(0, 'victim', 1)[0]!;
    let load: HealthyLoad | undefined;
    try {
      await node.start();
      load = new HealthyLoad(node.url, idsOnShard(1, 'healthy', quick ? 2 : 4));
      // Every touch of the victim by key, with its last answer: an outcome-unknown one is retried at the end.
      const victimTouches = new Map<string, CommandAnswer>();
      const touchVictim = async (label: string) => {
        const key = `victim-${label}-${victimTouches.size}`;
        const answer = await postCommand(node.url, { aggregate: 'probe', id: victim, command: 'touch' }, {}, key);
        victimTouches.set(key, answer);
        return answer;
      };
      for (let index = 0; index < 10; index++) await touchVictim('before');

      // Out of memory: the thread passes its 64 MiB heap cap and dies.
      const hogId = idsOnShard(0, 'hog', 1)[0]!;
      const hog = await postCommand(node.url, { aggregate: 'probe', id: hogId, command: 'hog' }, {}, 'hog-1');
      log(`hog answered ${hog.status} ${hog.code ?? ''} in ${Math.round(hog.latencyMs)} ms`);
      const afterOomMs = await pollUntil('the shard serving after running out of memory', async () => (await touchVictim('after-oom')).status === 200, { timeoutMs: 60_000 }).catch(
        () => undefined,
      );

      // Crash loop: one crash after another until the circuit opens.
      const crashes: CommandAnswer[] = [];
      const openedMs = await pollUntil(
        'the circuit opening',
        async () => {
          const answer = await postCommand(node.url, { aggregate: 'probe', id: hogId, command: 'exit' }, {}, `exit-${crashes.length}`);
          crashes.push(answer);
          return answer.code === 'SHARDLOG_SHARD_UNAVAILABLE';
        },
        { timeoutMs: 60_000, everyMs: 10 },
      ).catch(() => undefined);
      log(`crash loop: ${summary(crashes)}`);
      const openAt = Date.now();
      const whileOpen = await touchVictim('while-open');
      const readyWhileOpen = await readiness(node.url);
      const backMs = await pollUntil('the shard serving again after the circuit opened', async () => (await touchVictim('after-open')).status === 200, {
        timeoutMs: windowMs * 2,
        everyMs: 250,
      }).catch(() => undefined);
      log(backMs === undefined ? `the shard did not come back within ${windowMs * 2} ms` : `the shard came back ${Date.now() - openAt} ms after the circuit opened`);

      await load.stop();
      for (const [key, answer] of victimTouches) {
        if (answer.status !== 200) victimTouches.set(key, await postCommand(node.url, { aggregate: 'probe', id: victim, command: 'touch' }, {}, key));
      }
      const victimAcks = [...victimTouches.values()].filter((answer) => answer.status === 200);
      // Read after kill -9 and a restart: acknowledged also means durable.
      await node.stop('SIGKILL');
      await node.start();
      const state = (await (await fetch(`${node.url}/aggregates/probe/${victim}`)).json()) as { version?: number };
      const healthyFailures = load.failures();
      const invariants: Invariant[] = [
        { name: 'the healthy shard keeps serving', holds: healthyFailures.length === 0, detail: `${load.answers.length - healthyFailures.length} of ${load.answers.length} ok${healthyFailures.length > 0 ? `; ${summary(healthyFailures)}` : ''}` },
        { name: 'the command that ran out of memory fails retryably', holds: hog.status === 503 && hog.code === 'SHARDLOG_OUTCOME_UNKNOWN', detail: `${hog.status} ${hog.code ?? ''}` },
        { name: 'the shard serves again after running out of memory', holds: afterOomMs !== undefined, detail: afterOomMs === undefined ? 'not within 60 s' : `${afterOomMs} ms` },
        {
          name: 'a crash loop opens the circuit',
          holds: openedMs !== undefined && whileOpen.code === 'SHARDLOG_SHARD_UNAVAILABLE' && whileOpen.retryAfter !== null && whileOpen.latencyMs < 1_000,
          detail: `after ${crashes.length - 1} crashes; a command then: ${whileOpen.status} ${whileOpen.code ?? ''} in ${Math.round(whileOpen.latencyMs)} ms, Retry-After ${whileOpen.retryAfter}`,
        },
        { name: '/readyz says the shard is down', holds: readyWhileOpen?.status === 'unavailable' && readyWhileOpen.shards.some((shard) => shard.status === 'unavailable'), detail: JSON.stringify(readyWhileOpen?.shards) },
        { name: 'the shard comes back by itself', holds: backMs !== undefined, detail: backMs === undefined ? `still down ${windowMs * 2} ms after the circuit opened` : `${backMs} ms after the circuit opened` },
        { name: 'every acknowledged command on the crashing shard is kept (read after kill -9 and restart)', holds: state.version === victimAcks.length, detail: `version ${state.version} for ${victimAcks.length} acknowledged touches (of ${victimTouches.size}, failed ones retried with their keys)` },
      ];
      return {
        invariants,
        figures: {
          'healthy commands': load.answers.length,
          'hog answer ms': Math.round(hog.latencyMs),
          'serving again after OOM ms': afterOomMs ?? 'no',
          'crash loop answers': summary(crashes),
          'crash loop until open ms': openedMs ?? 'never',
          'back after open ms': backMs ?? `no (> ${windowMs * 2})`,
        },
      };
    } finally {
      await load?.stop();
      await node.stop('SIGKILL');
      data.remove();
    }
  },
};
