/**
 * The piscina entry of a shard thread. It owns its shard's SQLite log alone: it opens it on
 * the first request and closes it on `close` or before the thread exits for any reason.
 */
import { isMainThread } from 'node:worker_threads';
import { move, workerData } from 'piscina';
import { loadApp } from '../define/app.ts';
import { decodeWire, encodeWire } from '../codec.ts';
import { makeError, serializeError, ShardlogError } from '../errors.ts';
import type { ShardReply, ShardRequest, ShardResponse, ShardWorkerData } from '../protocol.ts';
import { ShardEngine } from './engine.ts';

if (isMainThread) throw new Error('runtime/shard/worker.ts runs only inside a shard thread');

const config = workerData as ShardWorkerData;
const app = await loadApp(config.appModule);
let engine: ShardEngine | undefined;
let closed = false;

// A thread that dies with its database open can abort the whole process: close it first.
process.on('exit', () => engine?.close());

/** Answers every request with a response; only the thread dying makes the host's call reject. */
export default function handleShardRequest(message: Uint8Array): unknown {
  let response: ShardReply;
  try {
    response = respond(decodeWire<ShardRequest>(message));
  } catch (error) {
    const shardlogError = error instanceof ShardlogError ? error : makeError('SHARDLOG_INTERNAL', error instanceof Error ? error.message : String(error));
    response = { type: 'failed', error: serializeError(shardlogError) };
  }
  scheduleIndexing();
  return move(encodeWire(response));
}

let indexingScheduled = false;

/**
 * The indexes are written between requests, a piece per turn of this thread's event loop
 * (it stays live between tasks: the pool waits for them with `Atomics.waitAsync`), so a
 * request that arrives meanwhile waits for one piece at most, never for a chunk.
 */
function scheduleIndexing(): void {
  if (indexingScheduled || engine === undefined) return;
  indexingScheduled = true;
  setImmediate(() => {
    indexingScheduled = false;
    if (engine?.indexWhileIdle() === true) scheduleIndexing();
  });
}

function respond(request: ShardRequest): ShardResponse {
  if (request.type === 'close') {
    engine?.close();
    engine = undefined;
    closed = true;
    return { type: 'close' };
  }
  // Once closed, the log stays closed: its data dir lock may already belong to someone else.
  if (closed) throw makeError('SHARDLOG_CLOSED', `shard ${config.shard} is closed`);
  engine ??= new ShardEngine(app, config);
  return engine.handle(request);
}
