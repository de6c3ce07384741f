import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRuntime } from '../../runtime/index.ts';
import probeApp from '../fixtures/probe-app.ts';
import probeAppV2 from '../fixtures/probe-app-v2.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';

const cleanup = cleanupAfterEach();

function snapshotRow(dir: string, stream: string): { version: number; schema: string } | undefined {
  const db = new Database(join(dir, 'shards', '0.db'), { readonly: true });
  try {
    return db.prepare<[string], { version: number; schema: string }>('SELECT version, schema FROM snapshots WHERE stream = ?').get(stream);
  } finally {
    db.close();
  }
}

describe('snapshots and event evolution', () => {
  it('writes a snapshot every snapshotEvery events, in the command transaction', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const runtime = await createRuntime({ app: probeApp, dataDir: temp.dir, partitions: 1, shards: 1, logger: silentLogger });
    cleanup.push(() => runtime.close());
    for (let index = 0; index < 2; index++) await runtime.dispatch({ aggregate: 'probe', id: 'p', command: 'touch', input: {} });
    expect(snapshotRow(temp.dir, 'probe/p')).toBeUndefined();
    await runtime.dispatch({ aggregate: 'probe', id: 'p', command: 'pair', input: { n: 1 } });
    expect(snapshotRow(temp.dir, 'probe/p')).toEqual({ version: 4, schema: 's1;Touched@1' });
  });

  it('ignores snapshots of another snapshot version and upcasts older payloads', async () => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const v1 = await createRuntime({ app: probeApp, dataDir: temp.dir, partitions: 1, shards: 1, logger: silentLogger });
    for (let index = 0; index < 4; index++) await v1.dispatch({ aggregate: 'probe', id: 'p', command: 'pair', input: { n: index } });
    expect(await v1.state({ aggregate: 'probe', id: 'p' })).toEqual({ state: { touches: 8 }, version: 8 });
    await v1.close();
    expect(snapshotRow(temp.dir, 'probe/p')?.schema).toBe('s1;Touched@1');

    const v2 = await createRuntime({ app: probeAppV2, dataDir: temp.dir, logger: silentLogger });
    cleanup.push(() => v2.close());
    // Folded from the events (upcast to version 2), not from the v1 snapshot, whose shape would lack total and sources.
    expect(await v2.state({ aggregate: 'probe', id: 'p' })).toEqual({
      state: { touches: 8, total: 12, sources: Array.from({ length: 8 }, () => 'v1') },
      version: 8,
    });
    await v2.dispatch({ aggregate: 'probe', id: 'p', command: 'touch', input: { n: 100 } });
    expect(snapshotRow(temp.dir, 'probe/p')).toEqual({ version: 9, schema: 's2;Touched@2' });
    const { events } = await v2.events({ aggregate: 'probe', id: 'p', after: 7 });
    expect(events.map((event) => event.data)).toEqual([
      { n: 3, source: 'v1' },
      { n: 100, source: 'v2' },
    ]);
  });
});
