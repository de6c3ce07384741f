/** The parts of GET /readyz a drill looks at. */
export interface Readiness {
  status: string;
  shards: { shard: number; status: string; queued: number }[];
  bus: { kind: 'embedded' } | { kind: 'jetstream'; connected: boolean; lagEvents: number; divergedPartitions: number[] };
  cluster?: { owned: number; acquiring: number; releasing: number };
}

/** /readyz as JSON (200 or 503 alike), or undefined when the node does not answer. */
export async function readiness(url: string): Promise<Readiness | undefined> {
  try {
    const response = await fetch(`${url}/readyz`);
    return (await response.json()) as Readiness;
  } catch (error) {
    if (error instanceof TypeError) return undefined;
    throw error;
  }
}

/** True once the node reports its bus connected with nothing left to publish. */
export async function busCaughtUp(url: string): Promise<boolean> {
  const ready = await readiness(url);
  return ready?.bus.kind === 'jetstream' && ready.bus.connected && ready.bus.lagEvents === 0;
}
