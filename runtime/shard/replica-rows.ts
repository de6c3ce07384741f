import { encodeStored } from '../codec.ts';
import type { BusEvent } from '../bus/bus-event.ts';
import { formatPosition, streamName } from '../partitioning.ts';
import type { CommandReply } from '../protocol.ts';
import type { CommandRow, EventRow } from './shard-log.ts';

const noFingerprint = Buffer.alloc(0);

/**
 * Events copied from the stream into a node's log, as log rows, with the command records
 * behind them rebuilt from the events (a command's events are consecutive in its partition
 * and carry its id in their metadata), so a retry after a handoff is still recognised.
 */
export function replicaRows(events: readonly BusEvent[]): { events: EventRow[]; commands: CommandRow[] } {
  const rows: EventRow[] = [];
  const commands: CommandRow[] = [];
  let run: BusEvent[] = [];
  const closeRun = (): void => {
    const last = run.at(-1);
    const commandId = last?.metadata.commandId;
    if (last !== undefined && typeof commandId === 'string') {
      const reply: CommandReply = {
        ok: true,
        result: { version: last.version, position: formatPosition(last.partition, last.seq), events: run.map(({ type, version }) => ({ type, version })) },
      };
      commands.push({ id: commandId, stream: streamName(last.aggregate, last.id), fingerprint: noFingerprint, result: encodeStored(reply), recorded_at: last.recordedAt });
    }
    run = [];
  };
  for (const event of events) {
    if (run.length > 0 && run[0]!.metadata.commandId !== event.metadata.commandId) closeRun();
    run.push(event);
    rows.push({
      partition: event.partition,
      seq: event.seq,
      stream: streamName(event.aggregate, event.id),
      version: event.version,
      type: event.type,
      schema_version: event.schemaVersion,
      data: encodeStored(event.data),
      meta: encodeStored(event.metadata),
      recorded_at: event.recordedAt,
    });
  }
  closeRun();
  return { events: rows, commands };
}
