/** One live aggregate instance in a shard's memory. */
export interface Actor {
  readonly stream: string;
  readonly aggregate: string;
  state: unknown;
  version: number;
}

/**
 * The live actors of a shard, least recently used first. Map keeps insertion order, so
 * re-inserting on access is the whole LRU. An evicted actor reloads from snapshot + events.
 */
export class ActorCache {
  private readonly actors = new Map<string, Actor>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.actors.size;
  }

  get(stream: string): Actor | undefined {
    const actor = this.actors.get(stream);
    if (actor !== undefined) {
      this.actors.delete(stream);
      this.actors.set(stream, actor);
    }
    return actor;
  }

  set(actor: Actor): void {
    this.actors.delete(actor.stream);
    this.actors.set(actor.stream, actor);
  }

  delete(stream: string): void {
    this.actors.delete(stream);
  }

  /** Drops every actor whose stream matches (a partition this shard no longer serves as it was). */
  deleteWhere(matches: (stream: string) => boolean): void {
    for (const stream of this.actors.keys()) if (matches(stream)) this.actors.delete(stream);
  }

  /** Drops the least recently used actors until the cache is within its capacity. */
  trim(): void {
    for (const stream of this.actors.keys()) {
      if (this.actors.size <= this.capacity) return;
      this.actors.delete(stream);
    }
  }
}
