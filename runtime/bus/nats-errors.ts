import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';

/**
 * NATS failures recognised by nats.js's own error classes and JetStream's API error codes,
 * never by message text. nats.js wraps: a request to a subject nobody serves fails with a
 * `RequestError` caused by a `NoRespondersError`, and a JetStream API call that nobody
 * serves with a `JetStreamNotEnabled` caused by that `RequestError`; so each check looks
 * down the chain of causes.
 */
function* causeChain(error: unknown): Generator<unknown> {
  let current = error;
  for (let depth = 0; current !== undefined && depth < 8; depth++) {
    yield current;
    current = current instanceof Error ? current.cause : undefined;
  }
}

function anyCause(error: unknown, test: (cause: unknown) => boolean): boolean {
  for (const cause of causeChain(error)) if (test(cause)) return true;
  return false;
}

/** The JetStream API error code (`err_code`, e.g. 10071), if the server refused the call. */
export function jetStreamApiCodeOf(error: unknown): number | undefined {
  for (const cause of causeChain(error)) if (cause instanceof JetStreamApiError) return cause.code;
  return undefined;
}

/** Nobody subscribes to the subject (or JetStream does not serve the API or direct gets asked for). */
export function isNoResponders(error: unknown): boolean {
  return anyCause(error, (cause) => cause instanceof errors.NoRespondersError || (cause instanceof errors.RequestError && cause.isNoResponders()));
}

/** No answer in time: the server, or the responder, may or may not have acted. */
export function isTimeout(error: unknown): boolean {
  return anyCause(error, (cause) => cause instanceof errors.TimeoutError);
}

/** This client's connection is closed or closing: nothing more goes through it. */
export function isConnectionClosed(error: unknown): boolean {
  return anyCause(error, (cause) => cause instanceof errors.ClosedConnectionError || cause instanceof errors.DrainingConnectionError);
}

/**
 * NATS could not be reached or did not answer: a timeout, no responders, a lost or closed
 * connection. Says nothing about the state asked about; never a lost compare-and-set race.
 */
export function isNatsOutage(error: unknown): boolean {
  return (
    isTimeout(error) ||
    isNoResponders(error) ||
    isConnectionClosed(error) ||
    anyCause(error, (cause) => cause instanceof errors.ConnectionError || cause instanceof errors.RequestError)
  );
}

/**
 * The write's expected last sequence did not hold: a JetStream publish with
 * `Nats-Expected-Last-Subject-Sequence` found another tail, or a KV `create` (the key exists)
 * or `update` (the revision moved on) lost its compare-and-set.
 */
export function isWrongLastSequence(error: unknown): boolean {
  const code = jetStreamApiCodeOf(error);
  return code === JetStreamApiCodes.StreamWrongLastSequence || code === JetStreamApiCodes.StreamWrongLastSequenceUnknown;
}

/** The stream (or the KV bucket's stream) does not exist. */
export function isStreamNotFound(error: unknown): boolean {
  return jetStreamApiCodeOf(error) === JetStreamApiCodes.StreamNotFound;
}

/** JetStream server error codes (nats-server's errors.json) that nats.js does not name. */
const noSuitablePeers = 10005;
const insufficientResources = 10023;
const replicasNotSupported = 10074;

/**
 * The server cannot place a stream (or KV bucket) with the replicas asked for: too few
 * JetStream servers in the cluster, not enough room on them, or a server outside any cluster
 * asked for more than one replica. A configuration problem, not an outage: retrying does not help.
 */
export function isUnplaceable(error: unknown): boolean {
  const code = jetStreamApiCodeOf(error);
  return code === noSuitablePeers || code === insufficientResources || code === replicasNotSupported;
}
