/**
 * The dependency rules `npm run lint` checks (dependency-cruiser). Type-only imports count:
 * a type in the wrong file is a dependency in the wrong direction all the same.
 */
const workerSide = '^runtime/(shard|projection|checkpoint)/';
const mainSide = '^(runtime/host|runtime/cluster|gateway|cli)/';

module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'A cycle means two files are one concept, or a type lives in the wrong file.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'worker-side-stays-off-the-main-thread',
      severity: 'error',
      comment: 'Shard, projector and checkpoint threads share only protocol files with the main thread.',
      from: { path: workerSide },
      to: { path: mainSide },
    },
    {
      name: 'bus-and-cluster-own-their-interfaces',
      severity: 'error',
      comment: 'bus/ and cluster/ state what they need of the node as interfaces of their own; host/ implements them.',
      from: { path: '^runtime/(bus|cluster)/' },
      to: { path: '^runtime/host/' },
    },
    {
      name: 'runtime-knows-no-edge',
      severity: 'error',
      comment: 'The engine is used by the gateway and the CLI, never the other way round.',
      from: { path: '^runtime/' },
      to: { path: '^(gateway|cli|actors|bench|test)/' },
    },
    {
      name: 'gateway-knows-no-cli',
      severity: 'error',
      from: { path: '^gateway/' },
      to: { path: '^cli/' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|bench/results)' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
