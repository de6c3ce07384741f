import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createRuntime, type StoredEvent } from '../../runtime/index.ts';
import probeApp from '../fixtures/probe-app.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { runUntilKilled } from '../support/run-until-killed.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';

const child = fileURLToPath(new URL('../fixtures/load-child.ts', import.meta.url));
const cleanup = cleanupAfterEach();

function groupBy<T>(items: readonly T[], key: (item: T) => string | undefined): Map<string | undefined, T[]> {
  const groups = new Map<string | undefined, T[]>();
  for (const item of items) {
    const group = groups.get(key(item));
    if (group === undefined) groups.set(key(item), [item]);
    else group.push(item);
  }
  return groups;
}

interface Ack {
  commandId: string;
  id: string;
  n: number;
  version: number;
}

/** Starts the load child and SIGKILLs it once it has acknowledged `killAfter` commands. */
async function runLoadUntilKilled(dataDir: string, killAfter: number): Promise<Ack[]> {
  const acks = await runUntilKilled(child, [dataDir], killAfter, { timeoutMs: 30_000 });
  return acks.map(([commandId, id, n, version]) => ({ commandId: commandId!, id: id!, n: Number(n), version: Number(version) }));
}

describe('a process killed with SIGKILL under load', () => {
  it('keeps every acknowledged command exactly once, with contiguous versions and no partial batch', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const acks = await runLoadUntilKilled(temp.dir, 400);
    expect(acks.length).toBeGreaterThanOrEqual(400);

    const runtime = await createRuntime({ app: probeApp, dataDir: temp.dir, logger: silentLogger });
    cleanup.push(() => runtime.close());

    // Every partition's seq is gapless from 1.
    const all: StoredEvent[] = [];
    for (let partition = 0; partition < 8; partition++) {
      for (let after = 0; ; ) {
        const { events } = await runtime.partitionEvents({ partition, after, limit: 1_000 });
        all.push(...events);
        if (events.length < 1_000) break;
        after = Number(events.at(-1)!.position.split(':')[1]);
      }
    }
    const byPartition = groupBy(all, (event) => event.position.split(':')[0]);
    for (const [partition, events] of byPartition) {
      expect(events.map((event) => event.position)).toEqual(events.map((_, index) => `${partition}:${index + 1}`));
    }

    // Every command is all-or-nothing: each stored command id has exactly its two events.
    const byCommand = groupBy(all, (event) => String(event.metadata.commandId));
    for (const [commandId, events] of byCommand) expect(events, commandId).toHaveLength(2);

    // Every acknowledged command is stored, at the version it was acknowledged with.
    for (const ack of acks) {
      const events = byCommand.get(ack.commandId);
      expect(events, ack.commandId).toBeDefined();
      expect(events?.[1]?.version).toBe(ack.version);
      expect(events?.[1]?.data).toEqual({ n: ack.n });
    }

    // Every stream's versions run 1..n with no gap, and replaying acknowledged commands appends nothing.
    const byStream = groupBy(all, (event) => event.id);
    for (const [id, events] of byStream) {
      const versions = events.map((event) => event.version).sort((a, b) => a - b);
      expect(versions, id).toEqual(versions.map((_, index) => index + 1));
    }
    for (const ack of acks.slice(0, 50)) {
      const replay = await runtime.dispatch({ aggregate: 'probe', id: ack.id, command: 'pair', input: { n: ack.n }, commandId: ack.commandId });
      expect(replay.version).toBe(ack.version);
    }
    const streamCount = (await runtime.state({ aggregate: 'probe', id: 'p-0' })).version;
    expect(streamCount).toBe(byStream.get('p-0')?.length ?? 0);
  });
});
