import app from '../../actors/app.ts';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../runtime/index.ts';
import { silentLogger } from './silent-logger.ts';
import { makeTempDir } from './temp-dir.ts';

export type BankRuntime = Runtime<typeof app>;

/** Starts the example app on a fresh temp data dir; `stop` closes it and removes the dir. */
export async function startBank(options: Partial<RuntimeOptions<typeof app>> = {}) {
  const temp = makeTempDir();
  const runtime = await createRuntime({ app, dataDir: temp.dir, partitions: 16, shards: 3, logger: silentLogger, ...options });
  return {
    runtime,
    dir: temp.dir,
    stop: async () => {
      await runtime.close();
      temp.remove();
    },
  };
}
