import type { NatsConnection } from '@nats-io/transport-node';
import { decodeWire, encodeWire } from '../codec.ts';
import type { SerializedError } from '../errors.ts';
import type { CommandEnvelope, CommandResult } from '../protocol.ts';

/** One forwarded command: its partition, the assignment epoch the sender saw, the command. */
export interface ForwardedItem {
  partition: number;
  epoch: number;
  envelope: CommandEnvelope;
}

/** The owner's answer to one item: its result, its error, or "not served here" (the sender waits for the assignment and tries again). */
export type ForwardedReply = { ok: true; result: CommandResult } | { ok: false; error: SerializedError; notOwner?: true };

/** The subject on which a node takes the commands other nodes forward to it, in batches. */
export function commandBatchSubject(prefix: string, nodeId: string): string {
  return `${prefix}.cmds.${nodeId}`;
}

export function decodeBatchRequest(bytes: Uint8Array): ForwardedItem[] {
  return decodeWire<ForwardedItem[]>(bytes);
}

export function encodeBatchReply(replies: ForwardedReply[]): Uint8Array {
  return encodeWire(replies);
}

interface Pending {
  item: ForwardedItem;
  resolve: (reply: ForwardedReply) => void;
  reject: (error: unknown) => void;
}

/** Leaves room under the server's max payload for the message's own headers. */
const payloadHeadroom = 4_096;

/**
 * The sender's side of forwarding: commands forwarded within one event-loop tick to the
 * same owner node travel as one NATS request (`<prefix>.cmds.<owner>`) and come back as one
 * reply, an answer per item in order. With P partitions spread over n nodes a per-partition
 * batch is about one command; per owner node the batch holds most of what one tick forwards.
 * A failed request (no responder, timeout, lost connection) fails every item of its batch
 * with that error: each item then takes the path a single forwarded request took.
 */
export class ForwardBatcher {
  private readonly waiting = new Map<string, Pending[]>();
  private scheduled = false;
  /** NATS requests sent so far. */
  requests = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly timeoutMs: () => number,
  ) {}

  send(owner: string, item: ForwardedItem): Promise<ForwardedReply> {
    return new Promise((resolve, reject) => {
      let queue = this.waiting.get(owner);
      if (queue === undefined) this.waiting.set(owner, (queue = []));
      queue.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // After the I/O callbacks of this turn: every request that arrived with this one joins the batch.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batches = [...this.waiting];
    this.waiting.clear();
    for (const [owner, queue] of batches) this.request(owner, queue);
  }

  private request(owner: string, queue: Pending[]): void {
    const payload = encodeWire(queue.map((pending) => pending.item));
    const limit = (this.nc.info?.max_payload ?? 1_048_576) - payloadHeadroom;
    if (payload.byteLength > limit && queue.length > 1) {
      const half = queue.length >> 1;
      this.request(owner, queue.slice(0, half));
      this.request(owner, queue.slice(half));
      return;
    }
    this.requests++;
    this.nc.request(commandBatchSubject(this.prefix, owner), payload, { timeout: this.timeoutMs() }).then(
      (message) => {
        const replies = decodeWire<ForwardedReply[]>(message.data);
        for (const [index, pending] of queue.entries()) {
          const reply = replies[index];
          if (reply === undefined) pending.reject(new Error(`the owner answered ${replies.length} of ${queue.length} forwarded commands`));
          else pending.resolve(reply);
        }
      },
      (error: unknown) => {
        for (const pending of queue) pending.reject(error);
      },
    );
  }
}
