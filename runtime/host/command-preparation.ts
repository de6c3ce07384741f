import { newCommandId } from '../command-id.ts';
import { aggregateNamed, type App } from '../define/app.ts';
import { commandOf } from '../define/execute.ts';
import { makeError } from '../errors.ts';
import { assertValidId, partitionOf, shardOf, streamName } from '../partitioning.ts';
import type { DispatchRequest, PreparedCommand } from '../runtime.ts';
import { assertValidCommandId } from './checked-input.ts';

/**
 * Turns a caller's request into the envelope a shard runs: the aggregate and command exist,
 * the id and command id are well formed, the input passes the command's schema (and is
 * replaced by what the schema returns), and the partition and shard are chosen. Throws a
 * ShardlogError for any bad input, before anything is queued.
 */
export function prepareCommand(app: App, partitions: number, shards: number, request: DispatchRequest): PreparedCommand {
  const aggregate = aggregateNamed(app, request.aggregate);
  const definition = commandOf(aggregate, request.command);
  if (definition === undefined) {
    throw makeError('SHARDLOG_UNKNOWN_COMMAND', `aggregate "${aggregate.name}" has no command "${request.command}"`, {
      aggregate: aggregate.name,
      command: request.command,
    });
  }
  assertValidId(request.id);
  const parsed = definition.input.safeParse(request.input);
  if (!parsed.success) {
    throw makeError('SHARDLOG_INVALID_INPUT', `invalid input for ${aggregate.name}.${request.command}`, {
      issues: parsed.error.issues.map(({ path, message, code }) => ({ path: path.map(String), message, code })),
    });
  }
  if (request.expectedVersion !== undefined && !(Number.isSafeInteger(request.expectedVersion) && request.expectedVersion >= 0)) {
    throw makeError('SHARDLOG_INVALID_INPUT', 'expectedVersion must be a non-negative integer', { issues: [] });
  }
  if (request.commandId !== undefined) assertValidCommandId(request.commandId);
  const partition = partitionOf(streamName(request.aggregate, request.id), partitions);
  return {
    shard: shardOf(partition, shards),
    partition,
    envelope: {
      commandId: request.commandId ?? newCommandId(),
      ...(request.commandId === undefined ? { freshId: true as const } : {}),
      aggregate: request.aggregate,
      id: request.id,
      command: request.command,
      input: parsed.data,
      ...(request.expectedVersion === undefined ? {} : { expectedVersion: request.expectedVersion }),
      ...(request.metadata === undefined ? {} : { metadata: request.metadata }),
    },
  };
}
