import type { Drill } from './drill.ts';
import { clockBackwards } from './clock-backwards.ts';
import { diskFull } from './disk-full.ts';
import { natsKill } from './nats-kill.ts';
import { relayKill } from './relay-kill.ts';
import { shardCrash } from './shard-crash.ts';
import { slowDisk } from './slow-disk.ts';
import { walReader } from './wal-reader.ts';

/** Every drill, in priority order; `quick` marks the set CI runs. */
export const drills: { drill: Drill; quick: boolean }[] = [
  { drill: diskFull, quick: true },
  { drill: natsKill, quick: true },
  { drill: shardCrash, quick: false },
  { drill: relayKill, quick: false },
  { drill: walReader, quick: false },
  { drill: slowDisk, quick: true },
  { drill: clockBackwards, quick: false },
];
