import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { Runtime, StoredEvent } from '../../runtime/index.ts';
import { waitFor } from './wait-for.ts';

/** Every committed event of the runtime, partition by partition, in seq order. */
export async function allEvents(runtime: Runtime): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  for (let partition = 0; partition < runtime.partitions; partition++) {
    for (let after = 0; ; ) {
      const page = (await runtime.partitionEvents({ partition, after, limit: 1_000 })).events;
      events.push(...page);
      if (page.length < 1_000) break;
      after = Number(page.at(-1)!.position.split(':')[1]);
    }
  }
  return events;
}

/** Waits until the projection has applied every committed event (and is not rebuilding). */
export async function caughtUp(runtime: Runtime, name: string, timeoutMs = 20_000): Promise<void> {
  let heads = await runtime.heads();
  await waitFor(
    async () => {
      heads = await runtime.heads();
      const status = await runtime.projections.statusOf(name);
      if (status.rebuild !== null) return false;
      for (const [partition, seq] of heads) if (runtime.projections.checkpoint(name, partition) < seq) return false;
      return true;
    },
    { timeoutMs, everyMs: 20 },
  );
}

/** Every document of a view file, read straight from SQLite. */
export function viewDocuments(dataDir: string, name: string, version = 1): Map<string, unknown> {
  const db = new Database(join(dataDir, 'views', `${name}.v${version}.db`), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare<[], { key: string; doc: string }>('SELECT key, doc FROM docs ORDER BY key').all();
    return new Map(rows.map((row) => [row.key, JSON.parse(row.doc) as unknown]));
  } finally {
    db.close();
  }
}
