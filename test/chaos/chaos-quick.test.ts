import { describe, expect, it } from 'vitest';
import { drills } from '../../bench/chaos/drills.ts';

/**
 * The quick set of `npm run chaos`: each drill drives a real node process over HTTP, injects
 * its fault and checks its invariants. A drill that cannot run here (not root, no mount
 * permission, no nats-server) is skipped with its reason.
 */
describe('chaos drills (quick set)', () => {
  for (const { drill } of drills.filter((entry) => entry.quick)) {
    it(`${drill.name}: ${drill.summary}`, { timeout: 300_000 }, async (context) => {
      const report = await drill.run({ quick: true, log: () => undefined });
      if (report.skipped !== undefined) {
        context.skip(report.skipped);
        return;
      }
      expect(report.invariants.length).toBeGreaterThan(0);
      const broken = report.invariants.filter((invariant) => !invariant.holds).map(({ name, detail }) => `${name}: ${detail}`);
      expect(broken).toEqual([]);
    });
  }
});
