import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { BusEvent } from '../../runtime/bus/bus-event.ts';
import { decodeBatch, streamNameOf } from '../../runtime/bus/event-message.ts';

/** Every event in the JetStream event stream, in stream order: what the cluster acknowledged. */
export async function streamEvents(servers: string | string[], prefix = 'shardlog'): Promise<BusEvent[]> {
  const nc = await connect({ servers });
  try {
    const jsm = await jetstreamManager(nc);
    const stream = streamNameOf(prefix);
    const last = (await jsm.streams.info(stream)).state.last_seq;
    const events: BusEvent[] = [];
    if (last === 0) return events;
    const consumer = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.All });
    for (let seen = 0; seen < last; ) {
      const messages = await consumer.fetch({ max_messages: 1_000, expires: 2_000 });
      let received = 0;
      for await (const message of messages) {
        received++;
        seen = message.seq;
        events.push(...decodeBatch(message.data).events);
        if (seen >= last) break;
      }
      if (received === 0) throw new Error(`the stream ended at ${seen}, before ${last}`);
    }
    return events;
  } finally {
    await nc.close();
  }
}

/** Checks what the stream must hold whatever happened: per partition gapless seqs, per aggregate contiguous versions. */
export function streamInvariants(events: readonly BusEvent[]): string[] {
  const problems: string[] = [];
  const seqs = new Map<number, number>();
  const versions = new Map<string, number>();
  for (const event of events) {
    const seq = seqs.get(event.partition) ?? 0;
    if (event.seq !== seq + 1) problems.push(`partition ${event.partition}: seq ${event.seq} after ${seq}`);
    seqs.set(event.partition, event.seq);
    const stream = `${event.aggregate}/${event.id}`;
    const version = versions.get(stream) ?? 0;
    if (event.version !== version + 1) problems.push(`${stream}: version ${event.version} after ${version}`);
    versions.set(stream, event.version);
  }
  return problems;
}
