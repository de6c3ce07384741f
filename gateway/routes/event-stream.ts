import type { FastifyInstance, FastifyRequest } from 'fastify';
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { makeError, parsePosition, partitionOf, type StoredEvent } from '../../runtime/index.ts';
import type { GatewayContext } from '../context.ts';
import { decodeCursor, encodeCursor } from '../event-stream-cursor.ts';

export interface EventStreamOptions {
  /** A comment line this often keeps proxies from closing an idle stream (default 15 s). */
  heartbeatMs?: number | undefined;
  /** Bytes a client may leave unread before reading pauses; it is cut off past 4× this or after 5 s stuck (default 1 MiB). */
  maxBufferedBytes?: number | undefined;
}

interface Filter {
  aggregates: Set<string> | undefined;
  id: string | undefined;
  types: Set<string> | undefined;
}

const pageSize = 500;
const stuckMs = 5_000;

/** `GET /events`: committed events as Server-Sent Events, filtered, resumable exactly with Last-Event-ID. */
export function eventStreamRoutes(app: FastifyInstance, context: GatewayContext, options: EventStreamOptions = {}): void {
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;
  const open = new Set<ServerResponse>();
  app.addHook('preClose', (done) => {
    for (const response of open) response.end();
    done();
  });

  app.get<{ Querystring: { aggregate?: string; type?: string; id?: string; from?: string; lastEventId?: string } }>('/events', async (request, reply) => {
    context.authorize(request, 'read');
    const { runtime } = context;
    const filter = parseFilter(context, request.query);
    const lastEventId = headerValue(request, 'last-event-id') ?? request.query.lastEventId;
    let cursor: number[] | undefined;
    if (lastEventId !== undefined && lastEventId !== '') cursor = decodeCursor(lastEventId, runtime.partitions);
    else if (request.query.from === 'start') cursor = new Array<number>(runtime.partitions).fill(0);
    else if (request.query.from !== undefined && request.query.from !== 'now') throw makeError('SHARDLOG_INVALID_QUERY', '?from= must be "start" or "now"');
    const only = filter.id === undefined ? undefined : partitionOf(`${[...filter.aggregates!][0]!}/${filter.id}`, runtime.partitions);
    // In a cluster, other nodes' heads are followed only while a stream is open: learn them
    // first, so "now" is the cluster's now and a resumed cursor sees what was published since.
    const stopFollowing = await runtime.followHeads();
    if (cursor === undefined) {
      const heads = runtime.knownHeads();
      cursor = Array.from({ length: runtime.partitions }, (_, partition) => heads.get(partition) ?? 0);
    }

    reply.hijack();
    const response = reply.raw;
    response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no', connection: 'keep-alive' });
    response.write('retry: 2000\n\n');
    open.add(response);

    const pending = new Set<number>();
    /** The newest head announced per partition: reading stops only once the cursor has reached it. */
    const announced = new Map<number, number>();
    let reading = false;
    let ended = false;
    const end = (why?: string) => {
      if (ended) return;
      ended = true;
      if (why !== undefined) request.log.warn({ buffered: response.writableLength }, why);
      open.delete(response);
      unsubscribe();
      stopFollowing();
      clearInterval(heartbeat);
      // A client cut off has megabytes unread: ending politely would wait on it, so drop the connection.
      if (why === undefined) response.end();
      else response.destroy();
    };
    const write = (chunk: string): void => {
      response.write(chunk);
      if (response.writableLength > 4 * maxBuffered) end('SSE client cut off: it reads too slowly');
    };
    const heartbeat = setInterval(() => write(': heartbeat\n\n'), heartbeatMs);
    heartbeat.unref();

    const readPending = async (): Promise<void> => {
      if (reading) return;
      reading = true;
      try {
        while (!ended && pending.size > 0) {
          if (response.writableLength > maxBuffered) {
            const drained = await Promise.race([once(response, 'drain').then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), stuckMs).unref())]);
            if (!drained) return end('SSE client cut off: it left its buffer full for 5 s');
            continue;
          }
          const partition = pending.values().next().value!;
          const { events } = await runtime.partitionEvents({ partition, after: cursor[partition]!, limit: pageSize });
          for (const event of events) {
            cursor[partition] = parsePosition(event.position).seq;
            if (!ended && matches(filter, event)) write(format(event, encodeCursor(cursor)));
          }
          // A commit announced while this read was under way may not be in it: read again
          // until the cursor reaches the newest head announced (an empty read waits for the next).
          if (events.length === 0 || (events.length < pageSize && cursor[partition]! >= (announced.get(partition) ?? 0))) pending.delete(partition);
        }
      } catch (error) {
        // The runtime closing, or a shard down: the client reconnects with its Last-Event-ID.
        end();
        request.log.debug({ err: error }, 'SSE stream ended by a failed read');
      } finally {
        reading = false;
      }
    };

    const unsubscribe = runtime.onHeads((heads) => {
      let woke = false;
      for (let index = 0; index < heads.length; index += 2) {
        const partition = heads[index]!;
        if ((only === undefined || partition === only) && heads[index + 1]! > cursor[partition]!) {
          announced.set(partition, Math.max(announced.get(partition) ?? 0, heads[index + 1]!));
          pending.add(partition);
          woke = true;
        }
      }
      if (woke) void readPending();
    });
    response.on('close', () => end());

    // Catch up from the cursor to the present first.
    for (const [partition, head] of runtime.knownHeads()) {
      if ((only === undefined || partition === only) && head > cursor[partition]!) {
        announced.set(partition, Math.max(announced.get(partition) ?? 0, head));
        pending.add(partition);
      }
    }
    void readPending();
  });
}

function headerValue(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseFilter(context: GatewayContext, query: { aggregate?: string; type?: string; id?: string }): Filter {
  const { app } = context.runtime;
  const aggregates = query.aggregate === undefined || query.aggregate === '' ? undefined : new Set(query.aggregate.split(','));
  for (const name of aggregates ?? []) if (!app.aggregateByName.has(name)) throw makeError('SHARDLOG_UNKNOWN_AGGREGATE', `unknown aggregate "${name.slice(0, 100)}"`, { aggregate: name.slice(0, 100) });
  let types: Set<string> | undefined;
  if (query.type !== undefined && query.type !== '') {
    const known = new Set<string>();
    for (const aggregate of app.aggregateByName.values()) {
      for (const event of Object.keys(aggregate.events)) known.add(event).add(`${aggregate.name}.${event}`);
    }
    types = new Set(query.type.split(','));
    for (const type of types) if (!known.has(type)) throw makeError('SHARDLOG_INVALID_QUERY', `unknown event type "${type.slice(0, 100)}" (use Type or aggregate.Type)`);
  }
  if (query.id !== undefined && aggregates?.size !== 1) throw makeError('SHARDLOG_INVALID_QUERY', '?id= needs exactly one ?aggregate=');
  return { aggregates, id: query.id, types };
}

function matches(filter: Filter, event: StoredEvent): boolean {
  if (filter.aggregates !== undefined && !filter.aggregates.has(event.aggregate)) return false;
  if (filter.id !== undefined && event.id !== filter.id) return false;
  if (filter.types !== undefined && !filter.types.has(event.type) && !filter.types.has(`${event.aggregate}.${event.type}`)) return false;
  return true;
}

function format(event: StoredEvent, id: string): string {
  const { aggregate, id: aggregateId, type, version, position, data, metadata, recordedAt } = event;
  return `id: ${id}\nevent: ${aggregate}.${type}\ndata: ${JSON.stringify({ aggregate, id: aggregateId, type, version, position, data, metadata, recordedAt })}\n\n`;
}
