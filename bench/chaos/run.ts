/**
 * `npm run chaos -- [--quick] [drill…]`: runs the named drills (default: all; with --quick,
 * the quick set in their short form), prints each one's invariants and figures and a summary
 * table, and exits 1 if any invariant failed.
 */
import { passed, type DrillReport } from './drill.ts';
import { drills } from './drills.ts';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const flags = args.filter((arg) => arg.startsWith('-') && arg !== '--quick');
const names = args.filter((arg) => !arg.startsWith('-'));
const known = new Map(drills.map((entry) => [entry.drill.name, entry]));
const unknown = names.filter((name) => !known.has(name));
if (flags.length > 0 || unknown.length > 0) {
  console.error(`shardlog chaos: ${flags.length > 0 ? `unknown flag ${flags.join(', ')}` : `unknown drill ${unknown.join(', ')}`}; drills: ${[...known.keys()].join(', ')}; flag: --quick`);
  process.exit(2);
}
const chosen = names.length > 0 ? names.map((name) => known.get(name)!) : drills.filter((entry) => !quick || entry.quick);

const rows: { drill: string; verdict: string; invariants: string; seconds: number }[] = [];
let failed = false;
for (const { drill } of chosen) {
  console.log(`\n## ${drill.name}: ${drill.summary}${quick ? ' (quick)' : ''}`);
  const started = performance.now();
  let report: DrillReport;
  try {
    report = await drill.run({ quick, log: (line) => console.log(`  · ${((performance.now() - started) / 1_000).toFixed(1)} s ${line}`) });
  } catch (error) {
    report = { invariants: [{ name: 'the drill ran to its end', holds: false, detail: error instanceof Error ? (error.stack ?? error.message) : String(error) }], figures: {} };
  }
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  if (report.skipped !== undefined) {
    console.log(`  skipped: ${report.skipped}`);
    rows.push({ drill: drill.name, verdict: 'skipped', invariants: report.skipped, seconds });
    continue;
  }
  for (const invariant of report.invariants) console.log(`  ${invariant.holds ? 'ok  ' : 'FAIL'} ${invariant.name}: ${invariant.detail}`);
  for (const [figure, value] of Object.entries(report.figures)) console.log(`       ${figure}: ${value}`);
  const held = report.invariants.filter((invariant) => invariant.holds).length;
  if (!passed(report)) failed = true;
  rows.push({ drill: drill.name, verdict: passed(report) ? 'pass' : 'FAIL', invariants: `${held}/${report.invariants.length} hold`, seconds });
}
console.log('\n## summary');
console.table(rows);
process.exit(failed ? 1 : 0);
