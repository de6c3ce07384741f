import { rendezvousOwner } from './rendezvous.ts';

/**
 * Who owns a partition. `epoch` grows by one at every change of owner; `target`, when set,
 * asks the live owner to hand the partition to that node (it drains, publishes its whole
 * tail, then writes `{ owner: target, epoch: epoch + 1 }` itself).
 */
export interface Assignment {
  owner: string;
  epoch: number;
  target?: string;
  /** Set by the target once it has copied the partition from the stream: the owner hands off now, so commands wait only for the last few events. */
  ready?: true;
}

export interface PlanInput {
  partitions: number;
  current: ReadonlyMap<number, Assignment>;
  /** Nodes with a recent heartbeat, draining ones included (they can still hand off). */
  alive: ReadonlySet<string>;
  /** Nodes that may take partitions: alive and not draining. */
  candidates: readonly string[];
}

/**
 * The leader's decision, as the assignments to write: a partition with no live owner goes
 * straight to its rendezvous node (the stream holds everything its old owner acknowledged),
 * one whose live owner is not its rendezvous node is asked to move, and a move the plan no
 * longer wants is called off.
 */
export function planAssignments({ partitions, current, alive, candidates }: PlanInput): Map<number, Assignment> {
  const changes = new Map<number, Assignment>();
  if (candidates.length === 0) return changes;
  for (let partition = 0; partition < partitions; partition++) {
    const wanted = rendezvousOwner(partition, candidates)!;
    const assignment = current.get(partition);
    if (assignment === undefined || !alive.has(assignment.owner)) {
      changes.set(partition, { owner: wanted, epoch: (assignment?.epoch ?? 0) + 1 });
    } else if (assignment.owner === wanted) {
      if (assignment.target !== undefined) changes.set(partition, { owner: wanted, epoch: assignment.epoch });
    } else if (assignment.target !== wanted) {
      changes.set(partition, { owner: assignment.owner, epoch: assignment.epoch, target: wanted });
    }
  }
  return changes;
}
