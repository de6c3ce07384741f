/**
 * The shard thread writes the log's indexes between requests (ADR 0013, update of
 * 2026-12-04): a chunk that came due near the end of a burst is finished while nothing else
 * arrives, and reads stay exact throughout.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRuntime } from '../../runtime/index.ts';
import { ShardEngine } from '../../runtime/shard/engine.ts';
import { indexDueAt, streamIndexDueAt } from '../../runtime/shard/log-index.ts';
import { indexMarks } from '../../runtime/shard/log-tail.ts';
import journalApp from '../fixtures/journal-app.ts';
import { cleanupAfterEach } from '../support/cleanup.ts';
import { silentLogger } from '../support/silent-logger.ts';
import { makeTempDir } from '../support/temp-dir.ts';
import { waitFor } from '../support/wait-for.ts';

const cleanup = cleanupAfterEach();
const eventsPerCommand = 50;

describe('indexes written between requests', () => {
  it('finish a chunk that came due near the end of a burst, with no request after it', async () => {
    const temp = makeTempDir();
    const runtime = await createRuntime({ app: journalApp, dataDir: temp.dir, partitions: 4, shards: 1, logger: silentLogger });
    cleanup.push(async () => {
      await runtime.close();
      temp.remove();
    });
    // One command at a time, so each is its own request: the stream chunk comes due a dozen
    // requests before the end, far fewer than it takes pieces to write.
    const commands = Math.ceil(streamIndexDueAt / eventsPerCommand) + 12;
    for (let index = 0; index < commands; index++) {
      const payloads = Array.from({ length: eventsPerCommand }, (_, offset) => `p${index}-${offset}`);
      await runtime.dispatch({ aggregate: 'journal', id: `j${index % 40}`, command: 'persist', input: { payloads } });
    }

    const db = new Database(join(temp.dir, 'shards', '0.db'), { readonly: true, fileMustExist: true });
    cleanup.push(() => {
      db.close();
    });
    const lastRow = (db.prepare('SELECT MAX(id) AS id FROM events').get() as { id: number }).id;
    expect(lastRow).toBe(commands * eventsPerCommand);
    // Nothing is sent from here on: only the thread's own idle turns can move the marks. Every
    // chunk that came due is finished (a mark moves when its chunk's last piece is in), so
    // what each index has not taken is less than what makes its next chunk due.
    let marks = indexMarks(db);
    await waitFor(
      () => {
        marks = indexMarks(db);
        return lastRow - marks.partition < indexDueAt && lastRow - marks.stream < streamIndexDueAt;
      },
      { timeoutMs: 30_000 },
    );
    const indexed = db.prepare('SELECT (SELECT COUNT(*) FROM partition_index) AS partitions, (SELECT COUNT(*) FROM stream_index) AS streams').get();
    expect(marks.stream).toBeGreaterThan(0);
    expect(indexed).toEqual({ partitions: marks.partition, streams: marks.stream });

    // A read of a stream whose events are partly in the stream index, partly past its mark.
    const sent = Array.from({ length: commands }, (_, index) => index).filter((index) => index % 40 === 7);
    const { events } = await runtime.events({ aggregate: 'journal', id: 'j7', limit: 1_000 });
    expect(events.map((event) => (event.data as { payload: string }).payload)).toEqual(sent.flatMap((index) => Array.from({ length: eventsPerCommand }, (_, offset) => `p${index}-${offset}`)));
    expect(events.map((event) => event.version)).toEqual(events.map((_, index) => index + 1));
  });

  it('are written before replies once the backlog passes two stream chunks, for a thread that never idles', () => {
    const temp = makeTempDir();
    const engine = new ShardEngine(journalApp, {
      shard: 0,
      shards: 1,
      partitions: 4,
      dataDir: temp.dir,
      appModule: journalApp.module,
      durability: 'relaxed',
      maxLiveActors: 1_000,
      returnEvents: 'none',
    });
    const db = new Database(join(temp.dir, 'shards', '0.db'), { readonly: true, fileMustExist: true });
    cleanup.push(() => {
      db.close();
      engine.close();
      temp.remove();
    });
    // Requests straight into the engine, with no turn of a thread's event loop between them.
    const backlogs: number[] = [];
    for (let index = 0; index < 200; index++) {
      const payloads = Array.from({ length: 1_000 }, (_, offset) => `p${index}-${offset}`);
      const response = engine.handle({ type: 'commands', commands: [{ commandId: `c${index}`, aggregate: 'journal', id: `j${index}`, command: 'persist', input: { payloads } }] });
      expect(response.type === 'commands' && response.replies[0]?.ok).toBe(true);
      const marks = indexMarks(db);
      backlogs.push((index + 1) * 1_000 - Math.min(marks.partition, marks.stream));
    }
    // The requests took their share only past the backlog bound, and from then on kept the
    // backlog within a few stream chunks, where it would otherwise be all 200,000 events.
    expect(Math.max(...backlogs)).toBeGreaterThanOrEqual(2 * streamIndexDueAt);
    expect(Math.max(...backlogs.slice(100))).toBeLessThan(3 * streamIndexDueAt);
  });
});
