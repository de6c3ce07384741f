import type { FastifyInstance } from 'fastify';
import { makeError, type Runtime } from '../../runtime/index.ts';
import type { GatewayContext } from '../context.ts';

interface ViewQuery {
  after?: string;
  limit?: string;
  cursor?: string;
  [field: string]: string | undefined;
}

const reserved = new Set(['after', 'limit', 'cursor']);

/** Read models: one document by key, or a page by an indexed field; `?after=<position>` waits (bounded) until the view has passed it. */
export function viewRoutes(app: FastifyInstance, context: GatewayContext, options: { waitMs: number }): void {
  const { runtime } = context;

  app.get<{ Params: { projection: string; key: string }; Querystring: ViewQuery }>('/views/:projection/:key', async (request, reply) => {
    context.authorize(request, 'read');
    const { projection, key } = request.params;
    // In a cluster the node that runs the projection answers (forwarded there), waiting as it must.
    const doc = await runtime.views.call(projection, { op: 'document', key, after: positionAfter(runtime, request.query.after), waitMs: options.waitMs });
    return reply.send(doc);
  });

  app.get<{ Params: { projection: string }; Querystring: ViewQuery }>('/views/:projection', async (request, reply) => {
    context.authorize(request, 'read');
    const { projection } = request.params;
    const filters = Object.entries(request.query).filter(([name]) => !reserved.has(name));
    if (filters.length !== 1 || typeof filters[0]![1] !== 'string') {
      throw makeError('SHARDLOG_INVALID_QUERY', `give exactly one indexed field to filter by, e.g. /views/${projection}?owner=ann`);
    }
    const [field, value] = filters[0]! as [string, string];
    const limit = request.query.limit === undefined ? 100 : boundedInteger('limit', request.query.limit, 1, 1_000);
    const after = positionAfter(runtime, request.query.after);
    return reply.send(await runtime.views.call(projection, { op: 'page', field, value, limit, cursor: request.query.cursor, after, waitMs: options.waitMs }));
  });
}

/** `?after=<partition>:<seq>`, checked. */
function positionAfter(runtime: Runtime, after: string | undefined): { partition: number; seq: number } | undefined {
  if (after === undefined) return undefined;
  const match = /^(\d{1,6}):(\d{1,15})$/.exec(after);
  if (match === null || Number(match[1]) >= runtime.partitions) {
    throw makeError('SHARDLOG_INVALID_QUERY', `?after= must be a position <partition>:<seq> with partition < ${runtime.partitions}, got "${after.slice(0, 40)}"`);
  }
  return { partition: Number(match[1]), seq: Number(match[2]) };
}

function boundedInteger(name: string, raw: string, min: number, max: number): number {
  if (!/^\d{1,7}$/.test(raw) || Number(raw) < min || Number(raw) > max) throw makeError('SHARDLOG_INVALID_QUERY', `?${name}= must be an integer from ${min} to ${max}`);
  return Number(raw);
}
