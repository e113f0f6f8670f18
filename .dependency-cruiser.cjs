// Layer rules from DESIGN.md "Layers". Each folder under src/ names what it may import; do not relax
// a rule to make an import pass: move the code to the layer it belongs to instead.
// Deviation (written down in docs/architecture.md): the agent may import `apiserver`
// and `store`, because the node-local read-only API reuses the server's API layer on the local store.
const allowed = {
  lib: ['lib'],
  api: ['lib', 'api'],
  store: ['lib', 'api', 'store'],
  protocol: ['lib', 'api', 'protocol'],
  client: ['lib', 'api', 'client'],
  apiserver: ['lib', 'api', 'store', 'client', 'apiserver'],
  controllers: ['lib', 'api', 'protocol', 'client', 'controllers'],
  hub: ['lib', 'api', 'protocol', 'client', 'hub'],
  agent: ['lib', 'api', 'protocol', 'client', 'store', 'apiserver', 'agent'],
  dashboard: ['lib', 'api', 'client', 'dashboard'],
};
const layers = Object.keys(allowed);
module.exports = {
  forbidden: [
    ...layers.map((layer) => ({
      name: `layer-${layer}`,
      comment: `src/${layer} may import only: ${allowed[layer].join(', ')}`,
      severity: 'error',
      // Tests may assemble real parts from any layer (a hub test runs a real API server).
      from: { path: `^src/${layer}/`, pathNot: '\\.test\\.ts$|/testing\\.ts$' },
      to: {
        path: `^src/(${layers.filter((l) => !allowed[layer].includes(l)).join('|')}|cli)/`,
      },
    })),
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
