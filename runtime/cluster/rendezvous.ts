import { fnv1a32 } from '../partitioning.ts';

/** A 32-bit finaliser (murmur3's fmix32): spreads FNV's weak low bits so scores of similar names differ. */
function mix(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Rendezvous (highest random weight) hashing: each partition goes to the node with the
 * highest score for it. A node joining takes about 1/n of the partitions, one leaving gives
 * only its own away, and every node computes the same answer with no coordination.
 */
export function rendezvousOwner(partition: number, nodes: readonly string[]): string | undefined {
  return rendezvousNode(String(partition), nodes);
}

/** The node with the highest rendezvous score for `key` (a partition number, or `projection:<name>`). */
export function rendezvousNode(key: string, nodes: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const node of nodes) {
    const score = mix(fnv1a32(`${node}/${key}`));
    if (score > bestScore || (score === bestScore && best !== undefined && node < best)) {
      best = node;
      bestScore = score;
    }
  }
  return best;
}
