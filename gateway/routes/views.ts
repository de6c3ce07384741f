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
    await readYourWrites(runtime, projection, request.query.after, options.waitMs);
    const doc = runtime.projections.get(projection, key);
    if (doc === undefined) throw makeError('SHARDLOG_NOT_FOUND', `view ${projection} has no document "${key.slice(0, 200)}"`);
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
    await readYourWrites(runtime, projection, request.query.after, options.waitMs);
    return reply.send(runtime.projections.query(projection, field, value, limit, request.query.cursor));
  });
}

async function readYourWrites(runtime: Runtime, projection: string, after: string | undefined, waitMs: number): Promise<void> {
  runtime.projections.assertKnown(projection);
  if (after === undefined) return;
  const match = /^(\d{1,6}):(\d{1,15})$/.exec(after);
  if (match === null || Number(match[1]) >= runtime.partitions) {
    throw makeError('SHARDLOG_INVALID_QUERY', `?after= must be a position <partition>:<seq> with partition < ${runtime.partitions}, got "${after.slice(0, 40)}"`);
  }
  await runtime.projections.waitFor(projection, Number(match[1]), Number(match[2]), waitMs);
}

function boundedInteger(name: string, raw: string, min: number, max: number): number {
  if (!/^\d{1,7}$/.test(raw) || Number(raw) < min || Number(raw) > max) throw makeError('SHARDLOG_INVALID_QUERY', `?${name}= must be an integer from ${min} to ${max}`);
  return Number(raw);
}
