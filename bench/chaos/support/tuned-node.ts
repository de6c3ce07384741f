/**
 * A node serving the example app with settings the CLI has no flags for (the per-shard queue
 * bound, the SSE heartbeat), so a drill can overload it or watch its timers:
 * `node --import tsx tuned-node.ts --port <p> --data <dir> [--shards <n>] [--queue <n>] [--heartbeat-ms <n>]`.
 */
import { parseArgs } from 'node:util';
import { appUrl } from '../../../cli/options.ts';
import { startNode } from '../../../gateway/node.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    data: { type: 'string' },
    shards: { type: 'string', default: '2' },
    queue: { type: 'string', default: '10000' },
    'heartbeat-ms': { type: 'string', default: '15000' },
  },
});
if (values.port === undefined || values.data === undefined) {
  process.stderr.write('tuned-node: --port and --data are required\n');
  process.exit(2);
}
const node = await startNode({
  port: Number(values.port),
  host: '127.0.0.1',
  dataDir: values.data,
  appModule: appUrl(undefined),
  partitions: 8,
  shards: Number(values.shards),
  durability: 'fsync',
  nodeId: 'tuned',
  tokens: [],
  insecure: false,
  bodyLimit: 1024 * 1024,
  logLevel: 'warn',
  eventStream: { heartbeatMs: Number(values['heartbeat-ms']) },
  tuning: { maxQueuedCommands: Number(values.queue) },
});
process.once('SIGTERM', () => void node.close().then(() => process.exit(0)));
