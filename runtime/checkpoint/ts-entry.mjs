// The checkpointer thread started from TypeScript sources loads through this file (see runtime/shard/ts-entry.mjs).
import { register } from 'tsx/esm/api';

register();
const worker = await import('./worker.ts');
export default worker.default;
