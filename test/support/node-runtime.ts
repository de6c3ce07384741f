import { NodeRuntime } from '../../runtime/host/node-runtime.ts';
import type { Runtime } from '../../runtime/index.ts';

/** The implementation behind a Runtime, for tests that reach into its internals (a relay of their own). */
export function nodeRuntime(runtime: Runtime): NodeRuntime {
  if (!(runtime instanceof NodeRuntime)) throw new Error('not a NodeRuntime');
  return runtime as NodeRuntime;
}
