import type { LocalViews } from '../cluster/view-forwarding.ts';
import { makeError } from '../errors.ts';
import type { ProjectionStatus } from '../projection/messages.ts';
import type { ReadAfter, ViewCall, ViewOp, ViewValue, Views } from '../view-calls.ts';
import type { ProjectorHost } from './projector-host.ts';

/** Reads wait for a projection just placed here to catch up, then for `after`, within one `waitMs`. */
async function readable(projectors: ProjectorHost, name: string, { after, waitMs }: ReadAfter): Promise<void> {
  const started = Date.now();
  await projectors.waitCaughtUp(name, waitMs);
  if (after !== undefined) await projectors.waitFor(name, after.partition, after.seq, Math.max(1, waitMs - (Date.now() - started)), waitMs);
}

/** Answers a view call from this node's projector thread and view files. */
export async function answerLocally<K extends ViewOp>(projectors: ProjectorHost, name: string, call: ViewCall<K>): Promise<ViewValue<K>> {
  projectors.assertKnown(name);
  const value = await answer(projectors, name, call);
  return value;
}

async function answer(projectors: ProjectorHost, name: string, call: ViewCall): Promise<ViewValue> {
  switch (call.op) {
    case 'document': {
      await readable(projectors, name, call);
      const doc = projectors.get(name, call.key);
      if (doc === undefined) throw makeError('SHARDLOG_NOT_FOUND', `view ${name} has no document "${call.key.slice(0, 200)}"`);
      return doc;
    }
    case 'page':
      await readable(projectors, name, call);
      return projectors.query(name, call.field, call.value, call.limit, call.cursor);
    case 'status':
      return projectors.statusOf(name);
    case 'rebuild':
      return projectors.rebuild(name);
    case 'dlq-list':
      return projectors.deadLetters(name, call.limit);
    case 'dlq-retry':
      return projectors.retryDeadLetter(name, call.id);
    case 'dlq-skip':
      return projectors.skipDeadLetter(name, call.id);
  }
}

/** The views of a node outside a cluster: it runs every projection. */
export function localViews(projectors: ProjectorHost): Views {
  return {
    call: (name, call) => answerLocally(projectors, name, call),
    statuses: (): Promise<ProjectionStatus[]> => projectors.status(),
  };
}

/** This node's projector as a cluster node sees it: it runs what is placed here. */
export function placedViewsOf(projectors: ProjectorHost, names: readonly string[]): LocalViews {
  return {
    names,
    runs: (name) => projectors.runs(name),
    place: (run) => projectors.place(run),
    answer: (name, call) => answerLocally(projectors, name, call),
  };
}
