/**
 * The projector thread: every projection of the app, folding the shard logs into view files
 * off the main thread. It owns the view files' writes; the main thread only reads them.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToEvents } from 'node:timers/promises';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { loadApp } from '../define/app.ts';
import { makeError, serializeError, ShardlogError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { FromProjector, ProjectorCall, ProjectorOp, ProjectorValue, ProjectorWorkerData, ToProjector } from './messages.ts';
import { ProjectionRunner } from './projection-runner.ts';
import { JetStreamFeed } from './jetstream-feed.ts';
import { DeadLetterMissing } from './projector.ts';
import { ShardFileReader } from './shard-file-reader.ts';

if (isMainThread || parentPort === null) throw new Error('runtime/projection/worker.ts runs only inside the projector thread');

const port = parentPort;
const config = workerData as ProjectorWorkerData;
const app = await loadApp(config.appModule);
mkdirSync(join(config.dataDir, 'views'), { recursive: true });
const reader = new ShardFileReader(config.dataDir, config.shards);
const heads = reader.heads();
const readersClosed = new Map<string, () => void>();
const runners = new Map<string, ProjectionRunner>();
let closed = false;
let wake: (() => void) | undefined;

function send(message: FromProjector): void {
  port.postMessage(message);
}

function closeAll(): void {
  for (const runner of runners.values()) runner.closeFiles();
  reader.close();
}

// A thread that dies with a database open can abort the process: close them first.
process.on('exit', closeAll);

for (const projection of app.projections) {
  runners.set(
    projection.name,
    new ProjectionRunner(app, projection, config.dataDir, reader, {
      closeReaders: (name) =>
        new Promise<void>((resolve) => {
          readersClosed.set(name, resolve);
          send({ type: 'close-readers', name });
        }),
      switched: (name, file, checkpoints) => send({ type: 'switched', name, file, checkpoints }),
      storageFailed: (name, error) => send({ type: 'log', level: 'warn', details: { projection: name, err: String(error) }, message: 'cannot write the view file (disk full or I/O error): nothing applied, trying again' }),
    }),
  );
}
const logger: Logger = {
  info: (details, message) => send({ type: 'log', level: 'info', details, message }),
  warn: (details, message) => send({ type: 'log', level: 'warn', details, message }),
  error: (details, message) => send({ type: 'log', level: 'error', details, message }),
};

/** Starts folding a projection: from the JetStream stream with NATS, else from the shard files. */
function startRunning(runner: ProjectionRunner): void {
  runner.running = true;
  if (config.nats !== undefined) {
    const { servers, prefix, replicas } = config.nats;
    const feed = new JetStreamFeed(() => runner.serving, { servers, prefix, replicas, logger, onProgress: () => reportProgress() });
    runner.feed = feed;
    runner.partialLogs = config.nats.partialLogs === true;
    void feed.start();
  }
  runner.noteHeads(heads, heads.keys());
}

const initiallyRun = config.run === undefined ? undefined : new Set(config.run);
for (const runner of runners.values()) {
  if (initiallyRun === undefined || initiallyRun.has(runner.projection.name)) startRunning(runner);
  else runner.running = false;
}
/** A placement the fold loop applies between its steps (a step may be swapping a rebuild's files). */
let placement: Set<string> | undefined;

async function applyPlacement(run: ReadonlySet<string>): Promise<void> {
  for (const runner of runners.values()) {
    const wanted = run.has(runner.projection.name);
    if (wanted && !runner.running) {
      startRunning(runner);
      logger.info({ projection: runner.projection.name }, 'projection placed on this node: catching up from its checkpoints');
    } else if (!wanted && runner.running) {
      await runner.stopRunning();
      logger.info({ projection: runner.projection.name }, 'projection placed on another node: stopped applying here');
    }
  }
  reportProgress();
}

send({
  type: 'ready',
  views: [...runners.values()].map((runner) => ({
    name: runner.projection.name,
    file: runner.file,
    checkpoints: runner.checkpointMarks(),
    halted: runner.serving.halted !== undefined,
    running: runner.running,
    catchingUp: runner.catchingUp,
  })),
});

port.on('message', (message: ToProjector) => {
  switch (message.type) {
    case 'heads': {
      const touched: number[] = [];
      for (let index = 0; index < message.heads.length; index += 2) {
        const partition = message.heads[index]!;
        const seq = message.heads[index + 1]!;
        if (seq > (heads.get(partition) ?? 0)) heads.set(partition, seq);
        touched.push(partition);
      }
      for (const runner of runners.values()) runner.noteHeads(heads, touched);
      wake?.();
      return;
    }
    case 'placement':
      placement = new Set(message.run);
      wake?.();
      return;
    case 'readers-closed':
      readersClosed.get(message.name)?.();
      readersClosed.delete(message.name);
      return;
    case 'call':
      try {
        const value = answer(message.call);
        // A retry or skip may have moved a checkpoint or lifted a halt: say so before replying.
        reportProgress();
        send({ type: 'reply', id: message.id, op: message.call.op, ok: true, value });
      } catch (error) {
        const shardlogError = error instanceof ShardlogError ? error : makeError('SHARDLOG_INTERNAL', error instanceof Error ? error.message : String(error));
        send({ type: 'reply', id: message.id, op: message.call.op, ok: false, error: serializeError(shardlogError) });
      }
      wake?.();
      return;
  }
});

/** The runner of a projection this node runs (admin calls reach the node that runs it). */
function runnerNamed(name: string): ProjectionRunner {
  const runner = runners.get(name);
  if (runner === undefined) throw makeError('SHARDLOG_UNKNOWN_PROJECTION', `unknown projection "${name}"`, { projection: name });
  if (!runner.running) throw makeError('SHARDLOG_PROJECTION_MOVING', `projection "${name}" does not run on this node`, { projection: name, retryAfterMs: 1_000 });
  return runner;
}

function answer(call: ProjectorCall): ProjectorValue {
  const handler = answers[call.op] as (call: ProjectorCall) => ProjectorValue;
  return handler(call);
}

/** Each call's handler returns exactly that call's reply value. */
const answers: { [K in ProjectorOp]: (call: ProjectorCall<K>) => ProjectorValue<K> } = {
  status: () => [...runners.values()].filter((runner) => runner.running).map((runner) => runner.status(heads)),
  rebuild: (call) => runnerNamed(call.name).startRebuild(heads),
  'dlq-list': (call) => runnerNamed(call.name).deadLetters(call.limit),
  'dlq-retry': (call) =>
    onDeadLetter(call, (runner) => {
      const outcome = runner.serving.retryDeadLetter(call.id);
      if (!outcome.applied) throw makeError('SHARDLOG_DLQ_CONFLICT', `dead letter ${call.id} failed again: ${outcome.error}`, { id: call.id, error: outcome.error });
      runner.resumed();
      return { applied: true };
    }),
  'dlq-skip': (call) =>
    onDeadLetter(call, (runner) => {
      runner.serving.skipDeadLetter(call.id);
      runner.resumed();
      return { skipped: true };
    }),
  close: () => {
    closed = true;
    return null;
  },
};

function onDeadLetter<T>(call: { name: string; id: number }, act: (runner: ProjectionRunner) => T): T {
  const runner = runnerNamed(call.name);
  try {
    return act(runner);
  } catch (error) {
    if (error instanceof DeadLetterMissing) throw makeError('SHARDLOG_DLQ_CONFLICT', `projection "${call.name}" has no dead letter ${call.id}`, { id: call.id });
    throw error;
  }
}

const reported = new Map<string, { halted: boolean; catchingUp: boolean }>();

function reportProgress(): void {
  for (const runner of runners.values()) {
    const marks = runner.takeProgress();
    const halted = runner.serving.halted !== undefined;
    const catchingUp = runner.catchingUp;
    const before = reported.get(runner.projection.name);
    if (marks.length > 0 || before?.halted !== halted || before.catchingUp !== catchingUp) send({ type: 'progress', name: runner.projection.name, marks, halted, catchingUp });
    reported.set(runner.projection.name, { halted, catchingUp });
  }
}

/** The fold loop: apply what is behind, report progress, sleep until new heads or a call arrive. */
async function run(): Promise<void> {
  while (!closed) {
    if (placement !== undefined) {
      const run = placement;
      placement = undefined;
      await applyPlacement(run);
    }
    let worked = false;
    await reader.sharing(async () => {
      for (const runner of runners.values()) {
        if (await runner.step(heads)) worked = true;
        reportProgress();
      }
    });
    if (worked) await yieldToEvents();
    else if (placement === undefined) await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
  }
  for (const runner of runners.values()) await runner.close();
  reader.close();
  port.close();
}

void run();
