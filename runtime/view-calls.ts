/**
 * What can be asked of a projection's views, by `op`: answered by the node that runs the
 * projection (here, or over NATS from another node of a cluster).
 */
import type { DeadLetter, ProjectionStatus, RebuildStatus } from './projection/messages.ts';

export interface ViewPage {
  items: { key: string; doc: unknown }[];
  /** Pass back as `cursor` for the next page; null on the last one. */
  cursor: string | null;
}

/** Read-your-writes: answer only once the projection has applied this position (waiting at most `waitMs`). */
export interface ReadAfter {
  after?: { partition: number; seq: number } | undefined;
  waitMs: number;
}

export interface ViewCalls {
  /** One document; SHARDLOG_NOT_FOUND if there is none. */
  document: { call: { key: string } & ReadAfter; value: unknown };
  /** A page of documents by an indexed field. */
  page: { call: { field: string; value: string; limit: number; cursor?: string | undefined } & ReadAfter; value: ViewPage };
  status: { call: object; value: ProjectionStatus };
  rebuild: { call: object; value: RebuildStatus };
  'dlq-list': { call: { limit: number }; value: DeadLetter[] };
  'dlq-retry': { call: { id: number }; value: { applied: true } };
  'dlq-skip': { call: { id: number }; value: { skipped: true } };
}

export type ViewOp = keyof ViewCalls;
export type ViewCall<K extends ViewOp = ViewOp> = K extends ViewOp ? { op: K } & ViewCalls[K]['call'] : never;
export type ViewValue<K extends ViewOp = ViewOp> = ViewCalls[K]['value'];

/** A projection's views, wherever the projection runs. */
export interface Views {
  /** Answers a call on the node that runs the projection. Throws SHARDLOG_UNKNOWN_PROJECTION for a name the app lacks. */
  call<K extends ViewOp>(projection: string, call: ViewCall<K>): Promise<ViewValue<K>>;
  /** Every projection's status; in a cluster each from the node that runs it, with `node` set. */
  statuses(): Promise<ProjectionStatus[]>;
}
