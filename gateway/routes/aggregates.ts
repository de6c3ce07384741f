import type { FastifyInstance } from 'fastify';
import { makeError, ShardlogError } from '../../runtime/index.ts';
import type { GatewayContext } from '../context.ts';

interface AggregateParams {
  aggregate: string;
  id: string;
}

/** Reads of the write side: one aggregate's state (now, at a version, at a time) and its events. Errors go to the gateway's problem handler. */
export function aggregateRoutes(app: FastifyInstance, context: GatewayContext): void {
  const { runtime } = context;

  app.get<{ Params: AggregateParams; Querystring: { version?: string; at?: string } }>('/aggregates/:aggregate/:id', async (request, reply) => {
    context.authorize(request, 'read');
    const { aggregate, id } = request.params;
    const { version, at } = request.query;
    if (version !== undefined && at !== undefined) throw makeError('SHARDLOG_INVALID_QUERY', 'give ?version= or ?at=, not both');
    const parsedVersion = version === undefined ? undefined : integerParam('version', version, 1);
    if (at !== undefined && Number.isNaN(Date.parse(at))) throw makeError('SHARDLOG_INVALID_QUERY', `?at=${at} is not an ISO time`);
    const result = await runtime
      .state({
        aggregate,
        id,
        ...(parsedVersion === undefined ? {} : { version: parsedVersion }),
        ...(at === undefined ? {} : { at }),
      })
      .catch((error: unknown) => {
        // A version of an aggregate with no events at all: the aggregate is what is missing, as without ?version.
        if (error instanceof ShardlogError && error.code === 'SHARDLOG_INVALID_QUERY' && error.data.currentVersion === 0) {
          throw makeError('SHARDLOG_NOT_FOUND', `${aggregate}/${id} has no events`);
        }
        throw error;
      });
    if (result.version === 0) throw makeError('SHARDLOG_NOT_FOUND', `${aggregate}/${id} has no events${at === undefined ? '' : ` at ${at}`}`);
    return reply.header('etag', `"${result.version}"`).send(result);
  });

  app.get<{ Params: AggregateParams; Querystring: { after?: string; limit?: string } }>('/aggregates/:aggregate/:id/events', async (request, reply) => {
    context.authorize(request, 'read');
    const { aggregate, id } = request.params;
    const after = request.query.after === undefined ? 0 : integerParam('after', request.query.after, 0);
    const limit = request.query.limit === undefined ? 100 : integerParam('limit', request.query.limit, 1);
    const { events } = await runtime.events({ aggregate, id, after, limit });
    if (events.length === 0 && after === 0) throw makeError('SHARDLOG_NOT_FOUND', `${aggregate}/${id} has no events`);
    return reply.send({
      events: events.map(({ type, version, position, data, recordedAt }) => ({ type, version, position, data, recordedAt })),
    });
  });
}

function integerParam(name: string, raw: string, min: number): number {
  if (!/^\d{1,15}$/.test(raw) || Number(raw) < min) throw makeError('SHARDLOG_INVALID_QUERY', `?${name}= must be an integer ≥ ${min}, got "${raw.slice(0, 40)}"`);
  return Number(raw);
}
