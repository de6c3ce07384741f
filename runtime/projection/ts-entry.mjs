// The projector thread started from TypeScript sources loads through this file (see runtime/shard/ts-entry.mjs).
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
