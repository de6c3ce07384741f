import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import app from '../../actors/app.ts';
import { createRuntime, type Runtime } from '../../runtime/index.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';

const hourMs = 60 * 60_000;
const temp = makeTempDir('shardlog-recorded-at-');
const open: Runtime[] = [];
afterEach(async () => {
  for (const runtime of open.splice(0)) await runtime.close();
  temp.remove();
});

async function start(): Promise<Runtime<typeof app>> {
  const runtime = await createRuntime({ app, dataDir: temp.dir, partitions: 4, shards: 1, logger: silentLogger });
  open.push(runtime);
  return runtime;
}

describe('recordedAt across a restart', () => {
  it('never goes backwards in a history when the node restarts with its wall clock behind the log', async () => {
    let runtime = await start();
    await runtime.dispatch({ aggregate: 'account', id: 'a1', command: 'open', input: { owner: 'o' } });
    await runtime.dispatch({ aggregate: 'account', id: 'a1', command: 'deposit', input: { amount: 5 } });
    await runtime.close();
    open.splice(0);
    // As if those events were recorded while the clock was an hour ahead, and it has since been stepped back.
    const db = new Database(join(temp.dir, 'shards', '0.db'));
    db.prepare('UPDATE events SET recorded_at = recorded_at + ?').run(hourMs);
    db.close();

    runtime = await start();
    await runtime.dispatch({ aggregate: 'account', id: 'a1', command: 'deposit', input: { amount: 7 } });
    const { events } = await runtime.events({ aggregate: 'account', id: 'a1' });
    const recorded = events.map((event) => Date.parse(event.recordedAt));
    expect(recorded).toHaveLength(3);
    expect(recorded[2]).toBeGreaterThanOrEqual(recorded[1]!);
    expect(recorded[1]! - Date.now()).toBeGreaterThan(hourMs / 2);
    // ?at= the time of the second event (the restart's events share it) sees the whole history.
    const atSecond = await runtime.state({ aggregate: 'account', id: 'a1', at: events[1]!.recordedAt });
    expect(atSecond.version).toBe(3);
  });
});
