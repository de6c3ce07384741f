import type { FastifyInstance, FastifyReply } from 'fastify';
import { makeError, partitionOf, type ClusterMember } from '../../runtime/index.ts';
import { assertValidId, streamName } from '../../runtime/partitioning.ts';
import type { GatewayContext } from '../context.ts';
import { sendProblem } from '../problem.ts';

/** The response header naming the advertised URL of a command's partition owner. */
export const ownerHeader = 'shardlog-owner';

/** Sets `Shardlog-Owner` to the URL of the owner of the aggregate's partition, when this node is in a cluster and knows it. */
export function setOwnerHint(reply: FastifyReply, cluster: ClusterMember | undefined, partitions: number, aggregate: string, id: string): void {
  if (cluster === undefined || id.length === 0) return;
  const url = cluster.ownerOf(partitionOf(streamName(aggregate, id), partitions))?.url;
  if (url !== undefined && url !== null) void reply.header(ownerHeader, url);
}

/**
 * `GET /cluster/partitions`: every partition's owner and its advertised URL, as this node
 * last saw them; `?aggregate=&id=` narrows it to that aggregate's partition. Open like
 * /readyz, so a load balancer or client can route commands straight to their owner.
 */
export function clusterPartitionRoutes(app: FastifyInstance, context: GatewayContext): void {
  app.get<{ Querystring: { aggregate?: string; id?: string } }>('/cluster/partitions', async (request, reply) => {
    const { runtime } = context;
    const cluster = runtime.cluster;
    if (cluster === undefined) return sendProblem(reply, makeError('SHARDLOG_NOT_FOUND', 'this node is not in a cluster: it serves every partition itself'));
    const { aggregate, id } = request.query;
    if (aggregate === undefined && id === undefined) return { partitions: runtime.partitions, owners: cluster.owners() };
    if (aggregate === undefined || id === undefined) throw makeError('SHARDLOG_INVALID_QUERY', '?aggregate= and ?id= go together');
    if (!runtime.app.aggregateByName.has(aggregate)) throw makeError('SHARDLOG_UNKNOWN_AGGREGATE', `unknown aggregate "${aggregate.slice(0, 100)}"`, { aggregate: aggregate.slice(0, 100) });
    assertValidId(id);
    const owner = cluster.ownerOf(partitionOf(streamName(aggregate, id), runtime.partitions));
    return { partitions: runtime.partitions, owners: owner === undefined ? [] : [owner] };
  });
}
