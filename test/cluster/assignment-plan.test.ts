import { describe, expect, it } from 'vitest';
import { planAssignments, type Assignment } from '../../runtime/cluster/assignment-plan.ts';
import { rendezvousOwner } from '../../runtime/cluster/rendezvous.ts';

const partitions = 256;

function owners(nodes: string[]): string[] {
  return Array.from({ length: partitions }, (_, partition) => rendezvousOwner(partition, nodes)!);
}

describe('rendezvous assignment', () => {
  it('spreads partitions evenly and moves only what a join or leave must', () => {
    const three = owners(['n1', 'n2', 'n3']);
    for (const node of ['n1', 'n2', 'n3']) expect(three.filter((owner) => owner === node).length).toBeGreaterThan(partitions / 3 - 30);
    const four = owners(['n1', 'n2', 'n3', 'n4']);
    const moved = four.filter((owner, partition) => owner !== three[partition]);
    // Every moved partition goes to the new node, and about a quarter move.
    expect(moved.every((owner) => owner === 'n4')).toBe(true);
    expect(moved.length).toBeGreaterThan(partitions / 4 - 30);
    expect(moved.length).toBeLessThan(partitions / 4 + 30);
    const two = owners(['n1', 'n3']);
    expect(two.every((owner, partition) => three[partition] === 'n2' || owner === three[partition])).toBe(true);
  });

  it('plans: dead owners replaced at once with a new epoch, live ones asked to move, moves no longer wanted called off', () => {
    const current = new Map<number, Assignment>([
      [0, { owner: 'dead', epoch: 4 }],
      [1, { owner: 'n1', epoch: 2 }],
      [2, { owner: 'n1', epoch: 7, target: 'n2' }],
    ]);
    const candidates = ['n1', 'n2'];
    const changes = planAssignments({ partitions: 3, current, alive: new Set(candidates), candidates });
    expect(changes.get(0)).toEqual({ owner: rendezvousOwner(0, candidates), epoch: 5 });
    const want1 = rendezvousOwner(1, candidates);
    expect(changes.get(1)).toEqual(want1 === 'n1' ? undefined : { owner: 'n1', epoch: 2, target: want1 });
    const want2 = rendezvousOwner(2, candidates);
    expect(changes.get(2)).toEqual(want2 === 'n1' ? { owner: 'n1', epoch: 7 } : undefined);
    expect(planAssignments({ partitions: 3, current, alive: new Set(), candidates: [] }).size).toBe(0);
  });
});
