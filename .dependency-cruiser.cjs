/**
 * The layer model of src/ (README "Code layout"), checked by `npm test` (depcruise). A folder may
 * import its own layer's modules and any folder listed before it, never one listed after it, so no
 * import cycle between folders can form. Each rule says why in its comment.
 */
const LAYERS = [
  // Leaves: shared vocabulary (principal, identity, restriction, account names) and helpers.
  ['util', 'model'],
  // Storage is below every domain module: it knows strings and TTLs, not what they mean.
  ['store'],
  // Configuration: schema → settings. Domain modules read it; it reads none of them.
  ['config'],
  // The domain, from the registry protocol's rules up to the ways a caller proves who they are.
  ['policy'],
  ['tokens'],
  ['connectors'],
  ['security'],
  ['identity'],
  ['robots'],
  ['federation'],
  ['observability'],
  // Adapters: only http/ knows statuses and wire formats.
  ['http'],
  // The composition root's parts: the settings resolved from a config file (ACL compiled, keys
  // loaded, cross-source checks), and its warnings.
  ['app'],
  // Entry points and the composition root.
  ['demo'],
  ['cli'],
  ['kubelet-credential-provider'],
  ['credential-helper'],
];
const above = (i) => LAYERS.slice(i + 1).flat();
const re = (names) => `^src/(${names.join('|')})/`;

/**
 * Known violations, by folder: the imports of a higher layer still allowed there, each naming the
 * issue that removes it. Empty: the last two (config reading the domain, issue 16; federation throwing
 * HTTP errors, issue 10) are gone. Keep it that way.
 */
const KNOWN = {};

module.exports = {
  forbidden: [
    ...LAYERS.slice(0, -1).flatMap((names, i) =>
      names.map((name) => ({
        name: `layer-${name}`,
        comment: `${name}/ may not import a higher layer (${above(i).join(', ')}): lower layers stay usable and testable without the ones above them`,
        severity: 'error',
        from: { path: `^src/${name}/` },
        to: { path: re(above(i)), ...(KNOWN[name] ? { pathNot: KNOWN[name] } : {}) },
      })),
    ),
    // Inside http/: the token endpoint stands alone; pages (web/) are below the JSON API and the
    // device flow, which reuse their sessions, forms and page layout — never the other way round.
    {
      name: 'http-token-alone',
      comment: 'the token endpoint answers registry clients only: it needs no page, session or API module',
      severity: 'error',
      from: { path: '^src/http/token/' },
      to: { path: '^src/http/(web|api|device)/' },
    },
    {
      name: 'http-web-below-api-and-device',
      comment: 'pages share their sessions and forms with the API and the device flow, so they may not depend on them',
      severity: 'error',
      from: { path: '^src/http/web/' },
      to: { path: '^src/http/(api|device)/' },
    },
    {
      name: 'http-api-not-device',
      comment: 'the JSON API and the device flow are siblings: what they share lives in web/ or http/',
      severity: 'error',
      from: { path: '^src/http/api/' },
      to: { path: '^src/http/device/' },
    },
    {
      name: 'http-device-not-api',
      comment: 'the JSON API and the device flow are siblings: what they share lives in web/ or http/',
      severity: 'error',
      from: { path: '^src/http/device/' },
      to: { path: '^src/http/api/' },
    },
    {
      name: 'credential-helper-alone',
      comment: 'docker-credential-berth runs on developer machines: it must not pull in the server',
      severity: 'error',
      from: { path: '^src/credential-helper/' },
      to: { path: '^src/', pathNot: '^src/credential-helper/' },
    },
    {
      name: 'no-circular',
      comment: 'an import cycle makes load order matter and modules impossible to use alone',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-dev-deps-in-src',
      comment: 'dist/ and the image ship src/ with production dependencies only',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'src-not-from-tests-or-bench',
      comment: 'the product never depends on its tests or its benchmark',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
