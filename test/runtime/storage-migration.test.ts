import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import app from '../../actors/app.ts';
import { createRuntime, readStreamEvents } from '../../runtime/index.ts';
import { schemaVersion } from '../../runtime/shard/migrations.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';

const cleanup = cleanupAfterEach();
const repo = fileURLToPath(new URL('../..', import.meta.url));
/** The last release whose shard logs have schema version 1 (every command record in `commands`). */
const schemaV1Release = 'af387a80c6779c6c20964a4788b94d96e25d6a97';
/** The last release whose shard logs have schema version 3 (`events` with UNIQUE (stream, version), no stream index). */
const schemaV3Release = 'eb90132336b4859c3fc8023bc5d48768c730c756';
/** The last release whose shard logs have schema version 4 (`events` keyed (partition, seq), the stream index by seq behind the commit). */
const schemaV4Release = '2f6802b6422271814987a6209badeef9098dc43c';

interface Written {
  outcomes: [string, { status: string } & Record<string, unknown>][];
  states: { state: unknown; version: number }[];
  rejected: string;
}

/** A data dir written by the release itself: its code exported from git, run in a child process. */
function writeWithRelease(release: string, dataDir: string, workDir: string): Written {
  const tree = join(workDir, 'release');
  mkdirSync(tree);
  const archive = execFileSync('git', ['-C', repo, 'archive', '--format=tar', release, 'runtime', 'actors', 'package.json', 'tsconfig.json'], { maxBuffer: 64 << 20 });
  execFileSync('tar', ['-x', '-C', tree], { input: archive });
  symlinkSync(join(repo, 'node_modules'), join(tree, 'node_modules'));
  mkdirSync(join(tree, 'test', 'fixtures'), { recursive: true });
  const writer = join(tree, 'test', 'fixtures', 'release-data-dir-writer.ts');
  copyFileSync(join(repo, 'test', 'fixtures', 'release-data-dir-writer.ts'), writer);
  const output = execFileSync(process.execPath, ['--import', 'tsx', writer, dataDir], { cwd: tree, encoding: 'utf8', maxBuffer: 16 << 20 });
  return JSON.parse(output.trim().split('\n').at(-1)!) as Written;
}

function userVersions(dataDir: string): number[] {
  return [0, 1].map((shard) => {
    const db = new Database(join(dataDir, 'shards', `${shard}.db`), { readonly: true });
    try {
      return db.pragma('user_version', { simple: true }) as number;
    } finally {
      db.close();
    }
  });
}

describe('shard logs written by an earlier release', () => {
  it.each([
    { release: schemaV1Release, version: 1 },
    { release: schemaV3Release, version: 3 },
    { release: schemaV4Release, version: 4 },
  ])('open after the numbered migrations from schema $version with every command record, event, state and idempotency key as that release left them', { timeout: 120_000 }, async ({ release, version }) => {
    const temp = makeTempDir();
    cleanup.push(temp.remove);
    const dataDir = join(temp.dir, 'data');
    const written = writeWithRelease(release, dataDir, temp.dir);
    expect(userVersions(dataDir)).toEqual([version, version]);
    // The stream reader works on a log not opened since the upgrade, and after it.
    const eventsBefore = readStreamEvents(app, dataDir, { aggregate: 'account', id: 'acc-5', after: 0, limit: 100 });
    expect(eventsBefore.map((event) => event.version)).toEqual([1, 2, 3]);

    const runtime = await createRuntime({ app, dataDir, logger: silentLogger });
    cleanup.push(() => runtime.close());
    expect(userVersions(dataDir)).toEqual([schemaVersion, schemaVersion]);
    expect(schemaVersion).toBeGreaterThan(version);
    expect(readStreamEvents(app, dataDir, { aggregate: 'account', id: 'acc-5', after: 0, limit: 100 })).toEqual(eventsBefore);
    expect(await runtime.events({ aggregate: 'account', id: 'acc-5' })).toMatchObject({ events: eventsBefore });
    expect(await runtime.state({ aggregate: 'account', id: 'acc-5', version: 2 })).toMatchObject({ version: 2, state: { balance: 15 } });

    for (const [commandId, outcome] of written.outcomes) {
      const now = await runtime.commandOutcome(commandId);
      const plain = now?.status === 'rejected' ? { ...now, error: { code: now.error.code, message: now.error.message } } : now;
      expect(plain, commandId).toEqual(outcome);
    }
    expect(written.outcomes.find(([commandId]) => commandId === written.rejected)?.[1].status).toBe('rejected');
    const states = await Promise.all(written.states.map((_, index) => runtime.state({ aggregate: 'account', id: `acc-${index}` })));
    expect(states).toEqual(written.states);

    // A client key repeated gets the recorded reply and appends nothing; reused with other input it is refused.
    const repeat = await runtime.dispatch({ aggregate: 'account', id: 'acc-3', command: 'deposit', input: { amount: 1 }, commandId: 'client-key-3' });
    expect(repeat).toEqual(written.outcomes.find(([commandId]) => commandId === 'client-key-3')?.[1].result);
    await expect(runtime.dispatch({ aggregate: 'account', id: 'acc-3', command: 'deposit', input: { amount: 2 }, commandId: 'client-key-3' })).rejects.toMatchObject({
      code: 'SHARDLOG_IDEMPOTENCY_KEY_REUSED',
    });
    // An id the release generated, sent back as a key, is recognised too.
    const generated = written.outcomes[1]!;
    expect(await runtime.dispatch({ aggregate: 'account', id: 'acc-0', command: 'deposit', input: { amount: 10 }, commandId: generated[0] })).toEqual(generated[1].result);
    expect(await runtime.state({ aggregate: 'account', id: 'acc-3' })).toEqual(written.states[3]);
    expect(await runtime.state({ aggregate: 'account', id: 'acc-0' })).toEqual(written.states[0]);

    // Commands after the upgrade continue each stream and are recorded in the new layout.
    const next = await runtime.dispatch({ aggregate: 'account', id: 'acc-0', command: 'deposit', input: { amount: 5 } });
    expect(next.version).toBe(written.states[0]!.version + 1);
    expect(await runtime.commandOutcome(next.commandId)).toEqual({ status: 'committed', aggregate: 'account', id: 'acc-0', result: next });
  });
});
