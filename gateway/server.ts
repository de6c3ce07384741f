import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { makeError, type Runtime, ShardlogError } from '../runtime/index.ts';
import { AsyncCommands } from './async-commands.ts';
import type { TokenEntry } from './auth.ts';
import { authenticator, authorizer, type GatewayContext } from './context.ts';
import { registerJsonBodyParser } from './json-body.ts';
import type { Metrics } from './metrics.ts';
import { fromFastifyError, sendProblem } from './problem.ts';
import { aggregateRoutes } from './routes/aggregates.ts';
import { eventStreamRoutes, type EventStreamOptions } from './routes/event-stream.ts';
import { projectionAdminRoutes } from './routes/projection-admin.ts';
import { viewRoutes } from './routes/views.ts';
import { clusterPartitionRoutes } from './routes/cluster-partitions.ts';
import { commandRoutes } from './routes/commands.ts';
import { operationRoutes } from './routes/operations.ts';
import { sagaRoutes } from './routes/sagas.ts';

export interface GatewayOptions {
  runtime: Runtime;
  metrics: Metrics;
  /** Bearer tokens; none means auth is off. */
  tokens?: readonly TokenEntry[];
  /** Largest accepted body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** How long `GET /views/…?after=<position>` waits for the projection before 504 (default 2,000 ms). */
  viewWaitMs?: number | undefined;
  /** `GET /events`: heartbeat interval and how much a slow client may leave unread. */
  eventStream?: EventStreamOptions | undefined;
  /** A pino logger (default: silent). */
  logger?: FastifyBaseLogger;
}

/**
 * The HTTP edge of a node: validates, authorizes and routes commands to the runtime, serves
 * the write-side reads and the operations endpoints. Every error is problem+json.
 */
export function buildGateway(options: GatewayOptions): FastifyInstance {
  const app = Fastify({
    ...(options.logger === undefined ? { logger: false } : { loggerInstance: options.logger }),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    // Two info lines per request would cost more than the command; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // Our own onRequest hook answers while closing, as problem+json with Retry-After.
    return503OnClosing: false,
    requestIdHeader: 'x-request-id',
    // Counted in UTF-16 units: a 256-character id outside the BMP is 512, and view keys may be 512 characters.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1_024 },
    // Errors raised before routing (a URL that does not decode, a bad header) are problems too.
    frameworkErrors: (error, _request, reply) => {
      void sendProblem(reply, fromFastifyError({ code: error.code, message: error.message, statusCode: error.statusCode ?? 400 }));
    },
  });
  const context: GatewayContext = {
    runtime: options.runtime,
    metrics: options.metrics,
    asyncCommands: new AsyncCommands(),
    authorize: authorizer(options.tokens ?? []),
  };
  options.metrics.watchShards(() => options.runtime.stats());
  if (options.runtime.app.projections.length > 0) options.metrics.watchProjections(() => options.runtime.projections.status());
  if (options.runtime.app.sagas.length > 0) options.metrics.watchSagas(options.runtime.sagas);
  registerJsonBodyParser(app);

  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  const authenticate = authenticator(options.tokens ?? []);
  const openRoutes = new Set(['/healthz', '/readyz', '/openapi.json', '/cluster/partitions']);
  app.addHook('onRequest', (request, reply, done) => {
    if (closing) {
      void sendProblem(reply, makeError('SHARDLOG_CLOSED', 'the node is shutting down', { retryAfterMs: 1_000 }));
      return;
    }
    if (!openRoutes.has(request.routeOptions.url ?? '')) {
      try {
        authenticate(request);
      } catch (error) {
        void sendProblem(reply, error as ShardlogError);
        return;
      }
    }
    done();
  });

  app.setErrorHandler((error, request, reply) => {
    const shardlogError = error instanceof ShardlogError ? error : fromFastifyError(error as { code?: string; statusCode?: number; message: string });
    if (shardlogError.code === 'SHARDLOG_INTERNAL') request.log.error({ err: error }, 'unhandled error');
    return sendProblem(reply, shardlogError);
  });
  app.setNotFoundHandler((request, reply) => sendProblem(reply, makeError('SHARDLOG_NOT_FOUND', `no route ${request.method} ${request.url.slice(0, 200)}`)));

  commandRoutes(app, context);
  aggregateRoutes(app, context);
  viewRoutes(app, context, { waitMs: options.viewWaitMs ?? 2_000 });
  projectionAdminRoutes(app, context);
  eventStreamRoutes(app, context, options.eventStream);
  operationRoutes(app, context);
  clusterPartitionRoutes(app, context);
  sagaRoutes(app, context);
  return app;
}
