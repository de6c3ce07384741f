// Shard threads started from TypeScript sources (tests, `tsx`) load through this file: it
// registers tsx's loader in the new thread, then hands over to the real entry.
import { register } from 'tsx/esm/api';

register();
const worker = await import('./worker.ts');
export default worker.default;
