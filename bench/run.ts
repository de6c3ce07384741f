/** `npm run bench -- <suite…>`: runs the named suites (default: all that exist). */
import { runCluster } from './cluster.bench.ts';
import { runCore } from './core.bench.ts';
import { runHttp } from './http.bench.ts';
import { runLayouts } from './layouts.bench.ts';
import { runProjections } from './projections.bench.ts';
import { runSagas } from './sagas.bench.ts';

const suites: Record<string, () => Promise<void>> = { core: runCore, http: runHttp, projections: runProjections, sagas: runSagas, cluster: runCluster, layouts: runLayouts };
const asked = process.argv.slice(2);
const unknown = asked.filter((name) => !(name in suites));
if (unknown.length > 0) {
  console.error(`unknown suite ${unknown.join(', ')}: choose from ${Object.keys(suites).join(', ')}`);
  process.exit(2);
}
for (const name of asked.length > 0 ? asked : Object.keys(suites)) {
  console.log(`\n## ${name}`);
  await suites[name]!();
}
