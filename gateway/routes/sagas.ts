import type { FastifyInstance } from 'fastify';
import { makeError } from '../../runtime/index.ts';
import type { GatewayContext } from '../context.ts';

/** Saga instances: one read from wherever its partition is served, and the operator's listing of this node's. */
export function sagaRoutes(app: FastifyInstance, context: GatewayContext): void {
  const { runtime } = context;

  app.get<{ Params: { saga: string; correlationId: string } }>('/sagas/:saga/:correlationId', async (request) => {
    context.authorize(request, 'read');
    const { saga, correlationId } = request.params;
    if (!runtime.app.sagaByName.has(saga)) throw makeError('SHARDLOG_UNKNOWN_SAGA', `unknown saga "${saga.slice(0, 100)}"`, { saga: saga.slice(0, 100) });
    const instance = await runtime.sagas.get(saga, correlationId);
    if (instance === undefined) throw makeError('SHARDLOG_NOT_FOUND', `no ${saga} instance "${correlationId.slice(0, 100)}" has started`);
    return instance;
  });

  app.get<{ Querystring: { saga?: string; status?: string; limit?: string } }>('/admin/sagas', async (request) => {
    context.authorize(request, 'admin');
    const { saga, status } = request.query;
    const raw = request.query.limit ?? '100';
    if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 10_000) throw makeError('SHARDLOG_INVALID_QUERY', '?limit= must be an integer from 1 to 10000');
    if (status !== undefined && !['running', 'completed', 'compensated', 'timed-out'].includes(status)) {
      throw makeError('SHARDLOG_INVALID_QUERY', '?status= must be running, completed, compensated or timed-out');
    }
    if (runtime.app.sagas.length === 0) return { items: [] };
    return { items: await runtime.sagas.list({ limit: Number(raw), ...(saga === undefined ? {} : { saga }), ...(status === undefined ? {} : { status }) }) };
  });
}
