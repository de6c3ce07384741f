import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from '../context.ts';
import { openApiDocument } from '../openapi.ts';

/** Liveness, readiness, metrics and the OpenAPI document. */
export function operationRoutes(app: FastifyInstance, context: GatewayContext): void {
  const openapi = JSON.stringify(openApiDocument(context.runtime.app));

  app.get('/healthz', () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const shards = context.runtime.stats().map(({ shard, status, queued }) => ({ shard, status, queued }));
    const cluster = context.runtime.cluster?.status();
    // A node leaving the cluster still forwards what it gets, but a load balancer should stop sending.
    const ready = shards.every((shard) => shard.status === 'serving') && cluster?.draining !== true;
    // Views lagging or halted do not stop this node taking commands; they are shown, not counted.
    const projections = context.runtime.app.projections.length === 0 ? [] : await context.runtime.projections.status().then(
      (all) => all.map(({ name, state, lagEvents, lagMs, deadLetters }) => ({ name, state, lagEvents, lagMs, deadLetters })),
      () => [{ name: '*', state: 'unavailable' }],
    );
    const connected = context.runtime.busConnected;
    const bus =
      connected === undefined
        ? { kind: 'embedded' }
        : {
            kind: 'jetstream',
            connected,
            lagEvents: context.runtime.busLagEvents(),
            divergedPartitions: context.runtime.busDiverged(),
          };
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', shards, projections, bus, ...(cluster === undefined ? {} : { cluster }) });
  });

  app.get('/metrics', async (request, reply) => {
    context.authorize(request, 'metrics');
    return reply.type(context.metrics.registry.contentType).send(await context.metrics.registry.metrics());
  });

  app.get('/openapi.json', (_request, reply) => reply.type('application/json').send(openapi));
}
