/**
 * The bare architecture pipeline, written from its description in issue 14 as the bound the
 * core is measured against: the main thread gathers the commands of one event-loop tick into
 * a batch, encodes it with msgpackr and transfers it to one piscina thread, which decides
 * trivially, writes one event row per command in one transaction (WAL + fsync) and answers.
 * No validation, no idempotency, no partitions: what the architecture costs with nothing on it.
 */
import { Packr } from 'msgpackr';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina, move } from 'piscina';

const codec = new Packr({ useRecords: false, mapsAsObjects: true });
const entry = fileURLToPath(new URL('./bare-pipeline-worker-entry.mjs', import.meta.url));

export interface BarePipeline {
  deposit: (id: string, amount: number) => Promise<number>;
  close: () => Promise<void>;
}

export function startBarePipeline(dir: string): BarePipeline {
  const pool = new Piscina({ filename: entry, minThreads: 1, maxThreads: 1, idleTimeout: Number.POSITIVE_INFINITY, workerData: { file: join(dir, 'bare.db') } });
  let queue: { id: string; amount: number; resolve: (version: number) => void; reject: (error: unknown) => void }[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const batch = queue;
    queue = [];
    const message = codec.pack(batch.map(({ id, amount }) => ({ id, amount })));
    const owned = new Uint8Array(message.byteLength);
    owned.set(message);
    (pool.run(move(owned.buffer), {}) as Promise<Uint8Array>).then(
      (reply) => {
        const versions = codec.unpack(reply) as number[];
        batch.forEach((command, index) => command.resolve(versions[index]!));
      },
      (error: unknown) => {
        for (const command of batch) command.reject(error);
      },
    );
  };
  return {
    deposit: (id, amount) =>
      new Promise<number>((resolve, reject) => {
        queue.push({ id, amount, resolve, reject });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      }),
    close: () => pool.destroy(),
  };
}
