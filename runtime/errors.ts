/**
 * Every failure the runtime reports has a stable code from this registry. Codes are never
 * reused once published; each carries its HTTP status, whether a retry may succeed, and one
 * sentence of documentation (docs/errors.md is generated from this by `npm run docs:errors`).
 */
export const errorCodes = {
  SHARDLOG_UNKNOWN_AGGREGATE: { status: 404, retryable: false, doc: 'The app defines no aggregate type with this name.' },
  SHARDLOG_UNKNOWN_PROJECTION: { status: 404, retryable: false, doc: 'The app defines no projection with this name.' },
  SHARDLOG_UNKNOWN_SAGA: { status: 404, retryable: false, doc: 'The app defines no saga with this name.' },
  SHARDLOG_VIEW_BEHIND: {
    status: 504,
    retryable: true,
    doc: 'A read with `?after=<position>` waited its bound and the projection had not reached that position; `data.behindBy` says by how many events.',
  },
  SHARDLOG_PROJECTION_HALTED: {
    status: 503,
    retryable: true,
    doc: 'The projection stopped on an event it could not apply (parked in its dead-letter table); fix the handler, then `shardlog dlq retry` or `skip`.',
  },
  SHARDLOG_DLQ_CONFLICT: { status: 409, retryable: false, doc: 'The dead-letter entry does not exist, or retrying it failed again (`data.error` says why).' },
  SHARDLOG_UNKNOWN_COMMAND: { status: 404, retryable: false, doc: 'The aggregate type defines no command with this name.' },
  SHARDLOG_INVALID_ID: {
    status: 400,
    retryable: false,
    doc: 'An aggregate id must be 1 to 256 characters with no control characters.',
  },
  SHARDLOG_INVALID_INPUT: { status: 400, retryable: false, doc: "The command's input failed its schema; `data.issues` lists each problem with its path." },
  SHARDLOG_INVALID_EVENT: { status: 500, retryable: false, doc: 'decide returned something other than an array of events, or an event type the aggregate does not define (a bug in the aggregate); nothing was written.' },
  SHARDLOG_EVENT_REFUSED: {
    status: 422,
    retryable: false,
    doc: "The command's input led decide to an event that its own payload schema refuses (for example a total that overflows to Infinity); the command is refused, nothing was written; `data.event` names the event and `data.issues` lists each problem with its path.",
  },
  SHARDLOG_REJECTED: { status: 422, retryable: false, doc: 'The domain refused the command; `data.code` is the domain reason (e.g. insufficient-funds).' },
  SHARDLOG_VERSION_MISMATCH: { status: 412, retryable: false, doc: 'expectedVersion differs from the aggregate version; `data.actualVersion` holds the current one.' },
  SHARDLOG_IDEMPOTENCY_KEY_REUSED: { status: 422, retryable: false, doc: 'This command id was already used with a different aggregate, command or input.' },
  SHARDLOG_DECIDE_FAILED: { status: 500, retryable: false, doc: 'decide threw an ordinary error (a bug in the aggregate); that command only failed, nothing was written.' },
  SHARDLOG_ACTOR_RESET: {
    status: 503,
    retryable: true,
    doc: "An earlier command in the same batch broke this aggregate's in-memory state (its evolve threw); nothing was written for this command: retry it.",
  },
  SHARDLOG_COMMIT_FAILED: { status: 503, retryable: true, doc: 'The batch transaction failed (disk full, I/O error); nothing of it was written, retry the command.' },
  SHARDLOG_OUTCOME_UNKNOWN: {
    status: 503,
    retryable: true,
    doc: 'The shard died (or, in a cluster, the owner did not answer or JetStream did not confirm in time) while the command was in flight; it may or may not be committed: retry with the same command id.',
  },
  SHARDLOG_PARTITION_FENCED: {
    status: 503,
    retryable: true,
    doc: 'Cluster: the partition moved to another node before JetStream confirmed this command, so it is not acknowledged; retry with the same command id (it goes to the new owner).',
  },
  SHARDLOG_PARTITION_MOVING: {
    status: 503,
    retryable: true,
    doc: 'Cluster: the partition is being handed between nodes (or has no live owner yet) and the bounded wait ran out; retry after Retry-After.',
  },
  SHARDLOG_PROJECTION_MOVING: {
    status: 503,
    retryable: true,
    doc: 'Cluster: the projection is being placed on another node (or its node is gone and no other runs it yet) and the bounded wait ran out; retry after Retry-After.',
  },
  SHARDLOG_CLUSTER_MISMATCH: {
    status: 500,
    retryable: false,
    doc: "Cluster: this node's partition count differs from the one recorded when the cluster was created; every node must use the same P.",
  },
  SHARDLOG_EVENTS_UNAVAILABLE: {
    status: 503,
    retryable: true,
    doc: "Cluster: `GET /events` could not learn the other nodes' partition heads from JetStream (NATS did not answer), so it cannot promise every node's events; retry after Retry-After.",
  },
  SHARDLOG_SHARD_UNAVAILABLE: {
    status: 503,
    retryable: true,
    doc: 'The shard owning this partition kept crashing and is left down for a cool-down (the restart window, Retry-After says how long), then tried again.',
  },
  SHARDLOG_OVERLOADED: { status: 503, retryable: true, doc: "The shard's queue is full; retry after a short delay." },
  SHARDLOG_CLOSED: { status: 503, retryable: true, doc: 'The runtime is closing or closed and takes no more work.' },
  SHARDLOG_INVALID_QUERY: { status: 400, retryable: false, doc: 'A read was given an out-of-range version, time, cursor or limit.' },
  SHARDLOG_DATA_DIR_MISMATCH: {
    status: 500,
    retryable: false,
    doc: 'The data directory was created with other settings (partition count, shard count or format) than the ones given.',
  },
  SHARDLOG_NOT_FOUND: { status: 404, retryable: false, doc: 'No such route, aggregate instance (no events yet) or command id.' },
  SHARDLOG_MALFORMED_REQUEST: {
    status: 400,
    retryable: false,
    doc: 'The request could not be read: malformed or too deeply nested JSON, forbidden keys (__proto__, constructor), or a bad header value.',
  },
  SHARDLOG_BODY_TOO_LARGE: { status: 413, retryable: false, doc: 'The request body is over the configured limit (1 MiB by default).' },
  SHARDLOG_UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, doc: 'Command bodies must be application/json.' },
  SHARDLOG_UNAUTHENTICATED: { status: 401, retryable: false, doc: 'Auth is on and the request carries no valid bearer token.' },
  SHARDLOG_FORBIDDEN: { status: 403, retryable: false, doc: "The bearer token is valid but lacks the scope this route needs (e.g. command:account:deposit, read, admin)." },
  SHARDLOG_DATA_DIR_LOCKED: {
    status: 500,
    retryable: false,
    doc: 'Another live process (or another runtime in this one) has the data directory open; its pid is in <data>/LOCK.',
  },
  SHARDLOG_INTERNAL: { status: 500, retryable: false, doc: 'An unexpected failure inside Shardlog; the message says what. Please report it.' },
  SHARDLOG_NATS_REPLICAS_UNPLACEABLE: {
    status: 500,
    retryable: false,
    doc: 'The NATS cluster cannot place the event stream or a KV bucket with the replica count asked for (`--nats-replicas`): fewer JetStream servers than replicas, or one server alone (more than one replica needs a NATS cluster).',
  },
  SHARDLOG_INVALID_CONFIG: { status: 500, retryable: false, doc: 'An option passed to createRuntime is out of range.' },
} as const satisfies Record<string, { status: number; retryable: boolean; doc: string }>;

export type ErrorCode = keyof typeof errorCodes;

/** The base of every error the runtime reports; `code` is stable, `data` is structured detail. */
export class ShardlogError extends Error {
  override name = 'ShardlogError';
  readonly code: ErrorCode;
  readonly data: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, data: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.data = data;
  }

  get status(): number {
    return errorCodes[this.code].status;
  }

  get retryable(): boolean {
    return errorCodes[this.code].retryable;
  }
}

/** A failure that may succeed when retried with the same command id. */
export class RetryableError extends ShardlogError {
  override name = 'RetryableError';
}

/** The domain refused the command (a decision, not a bug). `data.code` is the domain reason. */
export class RejectedError extends ShardlogError {
  override name = 'RejectedError';
  constructor(
    readonly reason: string,
    readonly detail: string,
    extra: Record<string, unknown> = {},
  ) {
    super('SHARDLOG_REJECTED', `rejected: ${reason}${detail ? ` (${detail})` : ''}`, { code: reason, detail, ...extra });
  }
}

/** The shape an error takes when it crosses a thread or process boundary. */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  data: Record<string, unknown>;
}

export function serializeError(error: ShardlogError): SerializedError {
  return { code: error.code, message: error.message, data: { ...error.data } };
}

/** Rebuilds the right class from a code, so `instanceof` and `code` survive the hop. */
export function deserializeError(wire: SerializedError): ShardlogError {
  if (wire.code === 'SHARDLOG_REJECTED') {
    const { code, detail, ...extra } = wire.data as { code: string; detail: string };
    return new RejectedError(code, detail, extra);
  }
  return makeError(wire.code, wire.message, wire.data);
}

export function makeError(code: ErrorCode, message: string, data: Record<string, unknown> = {}, cause?: unknown): ShardlogError {
  const options = cause === undefined ? undefined : { cause };
  return errorCodes[code].retryable ? new RetryableError(code, message, data, options) : new ShardlogError(code, message, data, options);
}
