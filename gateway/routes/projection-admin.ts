import type { FastifyInstance } from 'fastify';
import { makeError } from '../../runtime/index.ts';
import type { GatewayContext } from '../context.ts';

/** Operating projections over HTTP (what `shardlog projections` and `shardlog dlq` call): status, rebuild, dead letters (a saga's too). */
export function projectionAdminRoutes(app: FastifyInstance, context: GatewayContext): void {
  // In a cluster each call is answered by the node that runs the projection.
  const views = () => context.runtime.views;
  const isSaga = (name: string) => context.runtime.app.sagaByName.has(name);

  app.get('/admin/projections', async (request) => {
    context.authorize(request, 'admin');
    return { projections: await views().statuses() };
  });

  app.get<{ Params: { name: string } }>('/admin/projections/:name', async (request) => {
    context.authorize(request, 'admin');
    return views().call(request.params.name, { op: 'status' });
  });

  app.post<{ Params: { name: string } }>('/admin/projections/:name/rebuild', async (request, reply) => {
    context.authorize(request, 'admin');
    const rebuild = await views().call(request.params.name, { op: 'rebuild' });
    return reply.code(202).header('location', `/admin/projections/${request.params.name}`).send({ rebuild });
  });

  app.get<{ Params: { name: string }; Querystring: { limit?: string } }>('/admin/projections/:name/dlq', async (request) => {
    context.authorize(request, 'admin');
    const raw = request.query.limit ?? '100';
    if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 10_000) throw makeError('SHARDLOG_INVALID_QUERY', '?limit= must be an integer from 1 to 10000');
    // A saga's dead letters are its instances with parked inputs, by correlation id.
    if (isSaga(request.params.name)) return { items: await context.runtime.sagas.deadLetters(request.params.name, { limit: Number(raw) }) };
    return { items: await views().call(request.params.name, { op: 'dlq-list', limit: Number(raw) }) };
  });

  app.post<{ Params: { name: string; id: string; action: string } }>('/admin/projections/:name/dlq/:id/:action', async (request) => {
    context.authorize(request, 'admin');
    const { name, id, action } = request.params;
    if (isSaga(name)) {
      if (action === 'retry') await context.runtime.sagas.retry(name, id);
      else if (action === 'skip') await context.runtime.sagas.skip(name, id);
      else throw makeError('SHARDLOG_NOT_FOUND', `no action "${action.slice(0, 40)}": use retry or skip`);
      return { saga: name, correlationId: id, [action === 'retry' ? 'retried' : 'skipped']: true };
    }
    if (!/^\d{1,15}$/.test(id)) throw makeError('SHARDLOG_INVALID_QUERY', `dead letter id must be an integer, got "${id.slice(0, 40)}"`);
    if (action === 'retry') return views().call(name, { op: 'dlq-retry', id: Number(id) });
    if (action === 'skip') return views().call(name, { op: 'dlq-skip', id: Number(id) });
    throw makeError('SHARDLOG_NOT_FOUND', `no action "${action.slice(0, 40)}": use retry or skip`);
  });
}
