#!/usr/bin/env node
// Bundles each service's compiled entry point (services/<name>/dist/main.js, from `tsc -b`) into
// one file, services/<name>/dist/main.bundle.js, which the local stack and the images run.
// Why: a service loads ~2,200 CommonJS files at boot, and resolving, reading and compiling them was
// ~85 % of its start-up CPU; one file removes the resolution and most of the reading.
// The bundle starts from tsc's output (not the TypeScript), so decorator metadata, which Nest's
// dependency injection reads and esbuild does not emit, is already there.
'use strict';
const { build } = require('esbuild');
const { join } = require('node:path');
const { existsSync, readdirSync, statSync } = require('node:fs');

const root = join(__dirname, '..');

// Left to Node's require at run time, and installed with the service (production dependencies):
// - @grpc/grpc-js: OpenTelemetry instruments it (and Node's http) by hooking require;
// - @kubernetes/client-node: ES modules only, 15 MB, loaded with import() only for a pool on Kubernetes;
// - pino and thread-stream: pino's worker-thread transports load files by path.
const RUNTIME_MODULES = ['@grpc/grpc-js', '@kubernetes/client-node', 'pino', 'thread-stream'];
// Optional packages that Nest, pg and others try inside try/catch and do without; not installed.
const OPTIONAL_MODULES = [
  'pg-native',
  '@nestjs/microservices',
  '@nestjs/websockets',
  '@fastify/static',
  '@fastify/view',
  // Loaded by Nest only for an application created without an adapter; every service passes Fastify's.
  '@nestjs/platform-express',
  'class-validator',
  'class-transformer',
  'pino-pretty',
  // ws's native speed-ups.
  'bufferutil',
  'utf-8-validate',
];
const EXTERNAL = [...RUNTIME_MODULES, ...OPTIONAL_MODULES].flatMap((name) => [name, `${name}/*`]);

const OUTPUTS = new Set(['main.bundle.js', 'main.bundle.js.map']);

function newestMtime(path) {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return OUTPUTS.has(path.split('/').pop()) ? 0 : st.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((f) => newestMtime(join(path, f))));
}

// `npm start` and `npm test` build every time; a bundle newer than everything it is made from is kept.
function upToDate(service) {
  const output = join(root, 'services', service, 'dist', 'main.bundle.js');
  if (!existsSync(output)) return false;
  const inputs = [
    join(root, 'services', service, 'dist'),
    join(root, 'libs', 'contracts', 'dist'),
    join(root, 'libs', 'platform', 'dist'),
    join(root, 'package-lock.json'),
    __filename,
  ];
  return statSync(output).mtimeMs > Math.max(...inputs.map(newestMtime));
}

async function bundle(service) {
  const dir = join(root, 'services', service, 'dist');
  const result = await build({
    entryPoints: [join(dir, 'main.js')],
    outfile: join(dir, 'main.bundle.js'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: EXTERNAL,
    // Class names appear in Nest's logs and errors, and in our problem details.
    keepNames: true,
    // No comments or indentation: a third of the size to read and scan at every start, and one-byte
    // (ASCII) source, where a single non-ASCII comment would make V8 hold the whole bundle as UTF-16.
    minifyWhitespace: true,
    // Stack traces point at the TypeScript sources: tsc's maps are followed through.
    sourcemap: 'linked',
    logLevel: 'error',
    // A package's own optional `require(variable)` calls stay dynamic; they are not errors.
    logOverride: { 'require-resolve-not-external': 'silent', 'indirect-require': 'silent' },
  });
  return result;
}

async function main() {
  const only = process.argv.slice(2);
  const services = readdirSync(join(root, 'services')).filter(
    (s) => existsSync(join(root, 'services', s, 'dist', 'main.js')) && (only.length === 0 || only.includes(s)),
  );
  if (services.length === 0) throw new Error('no built service found: run `tsc -b tsconfig.build.json` first');
  await Promise.all(services.filter((s) => only.length > 0 || !upToDate(s)).map(bundle));
}

module.exports = { RUNTIME_MODULES, OPTIONAL_MODULES };

if (require.main === module) {
  main().catch((err) => {
    console.error(err.message ?? err);
    process.exit(1);
  });
}
