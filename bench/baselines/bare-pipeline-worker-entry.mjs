// Loads the TypeScript worker through tsx inside the piscina thread.
import { register } from 'tsx/esm/api';

register();
const worker = await import('./bare-pipeline-worker.ts');
export default worker.default;
