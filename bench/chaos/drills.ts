import type { Drill } from './drill.ts';
import { diskFull } from './disk-full.ts';

/** Every drill, in priority order; `quick` marks the set CI runs. */
export const drills: { drill: Drill; quick: boolean }[] = [{ drill: diskFull, quick: true }];
