import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import bank from '../../actors/app.ts';
import { decodeStored } from '../../runtime/codec.ts';
import { newCommandId } from '../../runtime/command-id.ts';
import type { App } from '../../runtime/define/app.ts';
import type { CommandEnvelope, CommandReply } from '../../runtime/protocol.ts';
import { ActorCache } from '../../runtime/shard/actor-cache.ts';
import { GroupCommit } from '../../runtime/shard/group-commit.ts';
import { ShardLog } from '../../runtime/shard/shard-log.ts';
import journalApp from '../fixtures/journal-app.ts';
import { makeTempDir } from '../support/temp-dir.ts';

/**
 * Commands whose id the runtime generated are recorded in `command_ids` by a 16-byte key, and
 * one that appended events keeps no reply of its own: it is rebuilt from its events. These
 * specs hold that layout to the same contract as a client key's record.
 */
const opened: { log: ShardLog; dir: { remove: () => void } }[] = [];
afterEach(() => {
  for (const { log, dir } of opened.splice(0)) {
    log.close();
    dir.remove();
  }
});

function shard(app: App) {
  const dir = makeTempDir();
  const log = new ShardLog(join(dir.dir, '0.db'), 'fsync', { shard: 0, shards: 1, partitions: 4 });
  opened.push({ log, dir });
  const config = { shard: 0, shards: 1, partitions: 4, dataDir: dir.dir, appModule: app.module, durability: 'fsync' as const, maxLiveActors: 100, returnEvents: 'none' as const };
  return { log, file: join(dir.dir, '0.db'), commit: new GroupCommit(app, log, new ActorCache(100), config) };
}

const fresh = (command: Omit<CommandEnvelope, 'commandId' | 'freshId'>, commandId = newCommandId()): CommandEnvelope => ({ ...command, commandId, freshId: true });

function rowsIn(file: string, table: string): Record<string, unknown>[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`SELECT * FROM ${table}`).all() as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

describe('the records of generated command ids', () => {
  it('keep only where a multi-event command\'s events are, and rebuild its reply from them', () => {
    const { log, file, commit } = shard(journalApp);
    const first = fresh({ aggregate: 'journal', id: 'j', command: 'persist', input: { payloads: ['a'] } });
    const second = fresh({ aggregate: 'journal', id: 'j', command: 'persist', input: { payloads: ['b', 'c', 'd'] } });
    const { replies } = commit.run([first, second]);
    expect(replies[1]).toMatchObject({ ok: true, result: { version: 4, events: [{ version: 2 }, { version: 3 }, { version: 4 }] } });

    expect(rowsIn(file, 'commands')).toEqual([]);
    const rows = rowsIn(file, 'command_ids');
    expect(rows).toHaveLength(2);
    expect(rows.every((row) => row.result === null && row.stream === null && (row.id as Buffer).length === 16)).toBe(true);
    for (const [index, command] of [first, second].entries()) {
      const record = log.findCommand(command.commandId);
      expect(record?.stream).toBe('journal/j');
      expect(decodeStored<CommandReply>(record!.result)).toEqual(replies[index]);
    }
  });

  it('keep a rejection\'s reply, and refuse the id reused as a key with other input', () => {
    const { log, commit } = shard(bank);
    const open = fresh({ aggregate: 'account', id: 'a', command: 'open', input: { owner: 'ada' } });
    const withdraw = fresh({ aggregate: 'account', id: 'a', command: 'withdraw', input: { amount: 5 } });
    const { replies } = commit.run([open, withdraw]);
    expect(replies[1]).toMatchObject({ ok: false, error: { code: 'SHARDLOG_REJECTED' } });
    expect(decodeStored<CommandReply>(log.findCommand(withdraw.commandId)!.result)).toEqual(replies[1]);

    // The same id sent back by a client (no freshId) is the same command: same reply, nothing appended.
    const { freshId: _fresh, ...asKey } = open;
    expect(commit.run([asKey]).replies).toEqual([replies[0]]);
    expect([...log.lastSeqs().values()]).toEqual([1]);
    const [reused] = commit.run([{ ...asKey, input: { owner: 'bob' } }]).replies;
    expect(reused).toMatchObject({ ok: false, error: { code: 'SHARDLOG_IDEMPOTENCY_KEY_REUSED' } });
  });

  it('are pruned by the time in their key, and leave every event', () => {
    const { log, commit } = shard(bank);
    const old = fresh({ aggregate: 'account', id: 'old', command: 'open', input: { owner: 'ada' } }, newCommandId(Date.now() - 60_000));
    const recent = fresh({ aggregate: 'account', id: 'recent', command: 'open', input: { owner: 'bob' } });
    commit.run([old, recent]);
    expect(log.pruneCommands(Date.now() - 30_000, 100)).toBe(1);
    expect(log.findCommand(old.commandId)).toBeUndefined();
    expect(log.findCommand(recent.commandId)).toBeDefined();
    expect([...log.lastSeqs().values()].reduce((sum, seq) => sum + seq, 0)).toBe(2);
  });

  it('go with the events a handoff truncates', () => {
    const { log, commit } = shard(journalApp);
    const kept = fresh({ aggregate: 'journal', id: 'j', command: 'persist', input: { payloads: ['a'] } });
    const dropped = fresh({ aggregate: 'journal', id: 'j', command: 'persist', input: { payloads: ['b', 'c'] } });
    commit.run([kept, dropped]);
    const [partition] = [...log.lastSeqs().keys()];
    log.truncatePartition(partition!, 1);
    expect(log.findCommand(kept.commandId)).toBeDefined();
    expect(log.findCommand(dropped.commandId)).toBeUndefined();
  });
});
