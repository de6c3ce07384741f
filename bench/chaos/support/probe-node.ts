/**
 * A node serving the probe app (commands that crash or exhaust their shard thread), with a
 * capped shard heap and a short restart window, which the CLI has no flags for:
 * `node --import tsx probe-node.ts --port <p> --data <dir> --memory-mb <n> --window-ms <n> --max-crashes <n>`.
 */
import { parseArgs } from 'node:util';
import { startNode } from '../../../gateway/node.ts';

const { values } = parseArgs({
  options: { port: { type: 'string' }, data: { type: 'string' }, 'memory-mb': { type: 'string', default: '64' }, 'window-ms': { type: 'string', default: '10000' }, 'max-crashes': { type: 'string', default: '5' } },
});
if (values.port === undefined || values.data === undefined) {
  process.stderr.write('probe-node: --port and --data are required\n');
  process.exit(2);
}
const node = await startNode({
  port: Number(values.port),
  host: '127.0.0.1',
  dataDir: values.data,
  appModule: new URL('../../../test/fixtures/probe-app.ts', import.meta.url).href,
  partitions: 8,
  shards: 2,
  durability: 'fsync',
  nodeId: 'probe',
  tokens: [],
  insecure: false,
  bodyLimit: 1024 * 1024,
  logLevel: 'warn',
  tuning: { shardMemoryMb: Number(values['memory-mb']), restart: { maxCrashes: Number(values['max-crashes']), windowMs: Number(values['window-ms']), initialDelayMs: 100, maxDelayMs: 1_000 } },
});
process.once('SIGTERM', () => void node.close().then(() => process.exit(0)));
