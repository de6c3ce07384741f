import type { Logger } from '../logger.ts';
import type { ChangeSignal } from './change-signal.ts';
import type { ClusterStore, StoredPlacement } from './cluster-store.ts';
import { rendezvousNode } from './rendezvous.ts';

export interface ProjectionPlacementOptions {
  nodeId: string;
  store: ClusterStore;
  logger: Logger;
  /** The app's projections. */
  projections: readonly string[];
  changes: ChangeSignal;
  /** The projections placed on this node changed: run exactly these. */
  runHere: (names: readonly string[]) => void;
}

/**
 * Where each projection runs: one live node each, chosen by the leader by rendezvous hashing
 * (so a join or leave moves few), stored in the cluster's KV as `projections.<name>` with an
 * epoch, and watched by every node. A move needs no handoff: every node's view file keeps its
 * own per-partition checkpoints, so the node that gains a projection resumes from its own
 * (or from the start of the stream) and applies each event once, and the one that loses it
 * just stops.
 */
export class ProjectionPlacement {
  private readonly placements = new Map<string, StoredPlacement>();
  private here: readonly string[] = [];

  constructor(private readonly options: ProjectionPlacementOptions) {}

  /** The node the projection is placed on, as this node last saw it. */
  nodeOf(projection: string): string | undefined {
    return this.placements.get(projection)?.placement.node;
  }

  /** Every projection with its node (undefined: not placed yet). */
  table(): { projection: string; node: string | undefined; epoch: number }[] {
    return this.options.projections.map((projection) => ({ projection, node: this.nodeOf(projection), epoch: this.placements.get(projection)?.placement.epoch ?? 0 }));
  }

  /** A placement arrived through the watch. */
  onPlacement(projection: string, stored: StoredPlacement | undefined): void {
    if (stored === undefined) this.placements.delete(projection);
    else this.placements.set(projection, stored);
    const here = this.options.projections.filter((name) => this.nodeOf(name) === this.options.nodeId);
    if (here.join('\n') !== this.here.join('\n')) {
      this.here = here;
      this.options.runHere(here);
    }
    this.options.changes.notify();
  }

  /** The projections placed on this node. */
  placedHere(): readonly string[] {
    return this.here;
  }

  /**
   * The leader's step: place every projection on its rendezvous node among `candidates` (live,
   * not leaving). `onlyUnplaced`: just back after losing NATS, when no node may be judged dead.
   */
  async plan(candidates: readonly string[], onlyUnplaced: boolean): Promise<void> {
    const { store, logger, projections } = this.options;
    if (candidates.length === 0) return;
    await Promise.all(
      projections.map(async (projection) => {
        const wanted = rendezvousNode(`projection:${projection}`, candidates)!;
        const current = this.placements.get(projection);
        if (current?.placement.node === wanted || (onlyUnplaced && current !== undefined)) return;
        const placement = { node: wanted, epoch: (current?.placement.epoch ?? 0) + 1 };
        if (await store.setPlacement(projection, placement, current?.revision ?? 0)) {
          logger.info({ projection, from: current?.placement.node, to: wanted, epoch: placement.epoch }, 'placed a projection');
        }
      }),
    );
  }
}
