/** Shardlog's public entry: the define API, the runtime, and the errors it reports. */
export { defineAggregate } from './define/aggregate.ts';
export { defineApp } from './define/app.ts';
export { defineProjection } from './define/projection.ts';
export { reject, Rejection } from './define/rejection.ts';
export { given } from './define/testing.ts';
export { createRuntime } from './host/create-runtime.ts';
export { readStreamEvents } from './host/log-reader.ts';
export { reshardDataDir } from './host/reshard.ts';
export { clusterReport } from './cluster/cluster-report.ts';
export { changeReplicas } from './cluster/replica-change.ts';
export { loadApp } from './define/app.ts';
export { errorCodes, makeError, RejectedError, RetryableError, ShardlogError } from './errors.ts';
export { fnv1a32, parsePosition, partitionOf } from './partitioning.ts';

export type { Aggregate, AggregateConfig, DecideContext, EmittedEvent, StateOf } from './define/aggregate.ts';
export type { App } from './define/app.ts';
export type { CommandInput, ExpectedEvent, HistoryEvent } from './define/testing.ts';
export type { Projection, ProjectionConfig, ProjectionContext, ProjectionEvent } from './define/projection.ts';
export type { BusPartitionLag, ClusterConfig, ClusterMember, CommandOutcome, CommitListener, DispatchRequest, DispatchResult, EventsQuery, NatsOptions, PreparedCommand, Runtime, RuntimeOptions, StateQuery } from './runtime.ts';
export type { Logger } from './logger.ts';
export type { BatchReport, RestartPolicy, ShardStats } from './host/shard-host.ts';
export type { CommandResult, Durability, StoredEvent } from './protocol.ts';
export type { DeadLetter, ProjectionStatus, RebuildStatus } from './projection/messages.ts';
export type { ProjectorHost } from './host/projector-host.ts';
export type { ClusterReport } from './cluster/cluster-report.ts';
export type { ReplicaChange } from './cluster/replica-change.ts';
export type { ClusterStatus } from './cluster/cluster-node.ts';
export type { ErrorCode, SerializedError } from './errors.ts';
