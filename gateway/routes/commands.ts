import type { FastifyInstance, FastifyRequest } from 'fastify';
import { commandOf } from '../../runtime/define/execute.ts';
import { makeError, ShardlogError, type DispatchResult } from '../../runtime/index.ts';
import { assertValidId } from '../../runtime/partitioning.ts';
import type { GatewayContext } from '../context.ts';
import { sendProblem, toProblem } from '../problem.ts';
import { setOwnerHint } from './cluster-partitions.ts';

interface CommandParams {
  aggregate: string;
  id: string;
  command: string;
}

/** `POST /commands/:aggregate/:id/:command` and `GET /commands/:commandId`. */
export function commandRoutes(app: FastifyInstance, context: GatewayContext): void {
  const { runtime, metrics, asyncCommands } = context;

  app.post<{ Params: CommandParams }>('/commands/:aggregate/:id/:command', async (request, reply) => {
    const started = performance.now();
    const { aggregate, id, command } = request.params;
    const definition = runtime.app.aggregateByName.get(aggregate);
    const known = definition !== undefined && commandOf(definition, command) !== undefined;
    // Named on every answer, errors included: a client that follows it skips the forwarding hop next time.
    setOwnerHint(reply, runtime.cluster, runtime.partitions, aggregate, id);
    const answered = (outcome: string) => metrics.commandAnswered(known ? aggregate : 'unknown', known ? command : 'unknown', outcome, (performance.now() - started) / 1_000);
    try {
      context.authorize(request, `command:${aggregate}:${command}`);
      const prepared = runtime.prepare({
        aggregate,
        id,
        command,
        // An empty body is an empty input (commands like close take none); JSON null is not.
        input: request.body === undefined ? {} : request.body,
        ...optionalHeaders(request),
        metadata: { requestId: request.id },
      });
      const { commandId } = prepared.envelope;
      if (prefersAsync(request)) {
        asyncCommands.track({ commandId, aggregate, id }, runtime.submit(prepared), (outcome) => {
          answered(outcome.status === 'committed' ? 'committed' : outcome.status === 'rejected' ? 'rejected' : outcome.error.code);
        });
        return await reply
          .code(202)
          .header('location', `/commands/${encodeURIComponent(commandId)}`)
          .send({ commandId, status: 'pending' });
      }
      const result = await runtime.submit(prepared);
      answered('committed');
      request.log.debug({ commandId, shard: prepared.shard, version: result.version }, 'command committed');
      return await reply.header('etag', `"${result.version}"`).send(commandReply(aggregate, id, result));
    } catch (error) {
      if (!(error instanceof ShardlogError)) throw error;
      answered(error.code === 'SHARDLOG_REJECTED' ? 'rejected' : error.code);
      return sendProblem(reply, error);
    }
  });

  app.get<{ Params: { commandId: string } }>('/commands/:commandId', async (request, reply) => {
    context.authorize(request, 'read');
    const { commandId } = request.params;
    const tracked = asyncCommands.get(commandId);
    if (tracked !== undefined) {
      switch (tracked.status) {
        case 'pending':
          return { commandId, status: 'pending' };
        case 'committed':
          return { commandId, status: 'committed', reply: commandReply(tracked.aggregate, tracked.id, tracked.result) };
        default:
          return { commandId, status: tracked.status, problem: toProblem(tracked.error) };
      }
    }
    const outcome = await runtime.commandOutcome(commandId);
    if (outcome === undefined) return sendProblem(reply, makeError('SHARDLOG_NOT_FOUND', `no command ${commandId} is pending or recorded`));
    if (outcome.status === 'committed') return { commandId, status: 'committed', reply: commandReply(outcome.aggregate, outcome.id, outcome.result) };
    return { commandId, status: 'rejected', problem: toProblem(outcome.error) };
  });
}

function commandReply(aggregate: string, id: string, result: DispatchResult) {
  return { aggregate, id, commandId: result.commandId, version: result.version, position: result.position, events: result.events };
}

function prefersAsync(request: FastifyRequest): boolean {
  const prefer = request.headers.prefer;
  return typeof prefer === 'string' && prefer.split(',').some((part) => part.trim().toLowerCase() === 'respond-async');
}

/** `Idempotency-Key` → commandId, `If-Match: "<version>"` → expectedVersion. */
function optionalHeaders(request: FastifyRequest): { commandId?: string; expectedVersion?: number } {
  const headers: { commandId?: string; expectedVersion?: number } = {};
  const key = request.headers['idempotency-key'];
  if (key !== undefined) {
    if (typeof key !== 'string') throw makeError('SHARDLOG_MALFORMED_REQUEST', 'send one Idempotency-Key header');
    try {
      assertValidId(key);
    } catch {
      throw makeError('SHARDLOG_MALFORMED_REQUEST', 'Idempotency-Key must be 1 to 256 characters with no control characters');
    }
    headers.commandId = key;
  }
  const ifMatch = request.headers['if-match'];
  if (ifMatch !== undefined) {
    const match = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(ifMatch);
    if (match === null) throw makeError('SHARDLOG_MALFORMED_REQUEST', 'If-Match must be a version ETag such as "3"');
    headers.expectedVersion = Number(match[1]);
  }
  return headers;
}
