/**
 * deploy/docker/Dockerfile and .dockerignore, checked without a container engine (ADR 0006).
 *
 * Static checks of the instructions (stages, base image, user, ports, COPY sources, locked
 * installs, the SERVICE check), then the runtime stage replayed in a temporary directory for two
 * services: the files its COPY steps name, node_modules limited to the production dependencies
 * `npm ls --omit=dev --workspace` lists (what the image's `npm ci --omit=dev --workspace` installs),
 * and its RUN steps, including the smoke test that loads the service. Every import of the built
 * code must resolve inside that directory, and the bundled MCP servers must answer there.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync,
  realpathSync, rmSync, statSync, symlinkSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix, relative, sep } from 'node:path';
import { DefaultPorts, ServiceNames, type ServiceName } from '../../libs/platform/src/config/services';

const ROOT = join(__dirname, '..', '..');
const DOCKERFILE = join(ROOT, 'deploy', 'docker', 'Dockerfile');
const DOCKERIGNORE = join(ROOT, '.dockerignore');
const BASE_IMAGE = 'node:20-bookworm-slim';
const REPLAYED: ServiceName[] = ['gateway', 'mcp-gateway'];

// --- A Dockerfile parser ------------------------------------------------------------------------
// Written here because the format is simple and line based (one instruction per logical line, `\`
// continues it, `#` starts a comment line, also inside a continuation) and no Dockerfile parser is
// among the project's packages.

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}
interface Stage {
  index: number;
  base: string;
  name?: string;
  instructions: Instruction[];
}
interface Dockerfile {
  globalArgs: Instruction[];
  stages: Stage[];
}

function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((rawLine, i) => {
    const line = rawLine.trim();
    if (line.startsWith('#')) return;
    if (!pending) {
      if (line === '') return;
      pending = { text: '', line: i + 1 };
    } else if (line === '') {
      return;
    }
    if (line.endsWith('\\')) {
      pending.text += `${line.slice(0, -1).trimEnd()} `;
      return;
    }
    pending.text += line;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(pending.text.trim());
    if (!m) throw new Error(`line ${pending.line}: cannot parse`);
    instructions.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), line: pending.line });
    pending = undefined;
  });
  if (pending) throw new Error(`line ${pending.line}: continuation never ends`);

  const globalArgs: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`line ${ins.line}: bad FROM`);
      stages.push({ index: stages.length, base: m[1], name: m[2], instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') throw new Error(`line ${ins.line}: ${ins.keyword} before the first FROM`);
      globalArgs.push(ins);
    } else {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

interface Copy {
  from?: string;
  sources: string[];
  dest: string;
  line: number;
}

function parseCopy(ins: Instruction): Copy {
  const words = ins.args.split(/\s+/);
  let from: string | undefined;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift() as string;
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
  }
  if (words[0]?.startsWith('[')) throw new Error(`line ${ins.line}: JSON-form COPY is not used here`);
  const dest = words.pop();
  if (!dest || words.length === 0) throw new Error(`line ${ins.line}: COPY needs a source and a destination`);
  return { from, sources: words, dest, line: ins.line };
}

function expand(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a: string | undefined, b: string | undefined) => vars[a ?? b ?? ''] ?? whole);
}

function envOf(ins: Instruction): Record<string, string> {
  return Object.fromEntries(ins.args.split(/\s+/).map((kv) => {
    const at = kv.indexOf('=');
    return [kv.slice(0, at), kv.slice(at + 1)];
  }));
}

/** The JSON array of an exec-form instruction (ENTRYPOINT, CMD, HEALTHCHECK ... CMD). */
function execForm(args: string): string[] {
  const json = args.slice(args.indexOf('['));
  const parsed = JSON.parse(json) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not exec form: ${args}`);
  return parsed as string[];
}

// --- .dockerignore ------------------------------------------------------------------------------
// Docker's rules: patterns are relative to the context root (no implicit `**/`), `*` and `?` stay
// within one path segment, `**` spans any number of them, `!` re-includes, the last matching
// pattern wins, and a pattern that matches a directory matches everything in it.

interface IgnoreRule {
  exclude: boolean;
  re: RegExp;
}

function ignoreRules(text: string): IgnoreRule[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const exclude = !l.startsWith('!');
      const pattern = posix.normalize((exclude ? l : l.slice(1)).replace(/^\/+/, ''));
      const segments = pattern.split('/');
      let re = '';
      segments.forEach((seg, i) => {
        const last = i === segments.length - 1;
        if (seg === '**') {
          re += last ? '.*' : '(?:.*/)?';
          return;
        }
        re += seg.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
        if (!last) re += '/';
      });
      return { exclude, re: new RegExp(`^${re}$`) };
    });
}

function isIgnored(rules: IgnoreRule[], path: string): boolean {
  const parts = path.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const rule of rules) {
    if (rule.exclude === ignored) continue;
    if (candidates.some((c) => rule.re.test(c))) ignored = rule.exclude;
  }
  return ignored;
}

function filesUnder(dir: string, skip: (rel: string) => boolean, base = dir): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const abs = join(dir, name);
    const rel = relative(base, abs).split(sep).join('/');
    if (skip(rel)) continue;
    if (lstatSync(abs).isDirectory()) out.push(...filesUnder(abs, skip, base));
    else out.push(rel);
  }
  return out;
}

// --- Imports of built code ----------------------------------------------------------------------

const BUILTINS = new Set(builtinModules);

function bareImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = new Set<string>();
  for (const m of text.matchAll(/\b(?:require|import)\(\s*(['"])([^'"]+)\1\s*\)/g)) {
    const spec = m[2];
    if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:') || BUILTINS.has(spec.split('/')[0])) continue;
    specs.add(spec);
  }
  return [...specs];
}

/** tsc's output; a service's bundle (made of these same files) is checked on its own. */
function jsFiles(dir: string): string[] {
  return filesUnder(dir, () => false).filter((f) => f.endsWith('.js') && !f.endsWith(BUNDLE)).map((f) => join(dir, f));
}

const BUNDLE = 'main.bundle.js';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { RUNTIME_MODULES, OPTIONAL_MODULES } = require('../../scripts/bundle-services.js') as { RUNTIME_MODULES: string[]; OPTIONAL_MODULES: string[] };

/**
 * What a service's bundle still requires at run time: the packages scripts/bundle-services.js
 * leaves to require (and the module names Ajv writes into the code it generates, found inside
 * string literals), which must be installed with the service; the optional packages the libraries
 * try inside try/catch may be missing.
 */
function bundleRequires(base: string, service: string): Array<[string, string]> {
  const file = join(base, 'services', service, 'dist', BUNDLE);
  // Skipped: the workspace packages (in the image, and checked in tsc's output), format strings
  // of error messages that bareImports finds inside string literals, and `ajv/dist/runtime/*`:
  // Ajv's code generator writes those requires into the source of standalone validators, which
  // nothing here generates (Ajv runs them from its scope; Fastify compiles no schemas for Nest).
  return bareImports(file)
    .filter((spec) => /^[@a-z0-9]/.test(spec) && !spec.includes('%') && !spec.startsWith('@ziggie/') && !spec.startsWith('ajv/dist/runtime/'))
    .filter((spec) => !OPTIONAL_MODULES.includes(packageName(spec)))
    .map((spec): [string, string] => [file, spec]);
}

// Resolved by a plain node process: Jest's own module system (and its moduleNameMapper) stands in
// for require and createRequire inside a spec.
const RESOLVER = `
const { createRequire } = require('node:module');
const { readFileSync, realpathSync } = require('node:fs');
const out = JSON.parse(readFileSync(0, 'utf8')).map(([from, spec]) => {
  try { return { path: realpathSync(createRequire(from).resolve(spec)) }; }
  catch (err) { return { error: String(err.message).split('\\n')[0] }; }
});
process.stdout.write(JSON.stringify(out));
`;

interface Resolution {
  file: string;
  spec: string;
  path?: string;
  error?: string;
}

function resolveAll(pairs: Array<[string, string]>): Resolution[] {
  const res = spawnSync(process.execPath, ['-e', RESOLVER], { input: JSON.stringify(pairs), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (res.status !== 0) throw new Error(`resolver failed: ${res.stderr}`);
  const out = JSON.parse(res.stdout) as Array<{ path?: string; error?: string }>;
  return out.map((r, i) => ({ file: pairs[i][0], spec: pairs[i][1], ...r }));
}

/** Every bare import of the built JavaScript under the given directories, as [file, spec] pairs. */
function importsOf(base: string, dirs: string[]): Array<[string, string]> {
  return dirs.flatMap((dir) => jsFiles(join(base, dir)).flatMap((file) => bareImports(file).map((spec): [string, string] => [file, spec])));
}

/** The directory of the installed package a resolved file belongs to (…/node_modules/[@scope/]name). */
function packageDir(file: string): string | undefined {
  const parts = file.split(sep);
  const at = parts.lastIndexOf('node_modules');
  if (at < 0) return undefined;
  const length = parts[at + 1]?.startsWith('@') ? at + 3 : at + 2;
  return parts.slice(0, length).join(sep);
}

function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

// --- Fixtures -----------------------------------------------------------------------------------

const dockerfile = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
const rules = ignoreRules(readFileSync(DOCKERIGNORE, 'utf8'));
const rootPackage = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[]; engines: { node: string } };
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; link?: boolean }> };

function stage(name: string): Stage {
  const found = dockerfile.stages.find((s) => s.name === name);
  if (!found) throw new Error(`no stage ${name}`);
  return found;
}

/** A stage and the stages it is built FROM, nearest first. */
function lineage(s: Stage): Stage[] {
  const chain = [s];
  let cur = s;
  for (;;) {
    const parent = dockerfile.stages.find((p) => p.name === cur.base && p.index < cur.index);
    if (!parent) return chain;
    chain.push(parent);
    cur = parent;
  }
}

/** The instructions that make the image of one service, base first. */
function imageInstructions(service: ServiceName): Instruction[] {
  const final = dockerfile.stages[dockerfile.stages.length - 1];
  const target = stage(expand(final.base, { SERVICE: service }));
  return [...lineage(target)].reverse().flatMap((s) => s.instructions).concat(final.instructions);
}

function runs(s: Stage): string[] {
  return s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
}

function workdir(s: Stage): string {
  const w = lineage(s).flatMap((x) => x.instructions).filter((i) => i.keyword === 'WORKDIR');
  return w.length > 0 ? w[0].args : '/';
}

describe('Dockerfile', () => {
  it('is multi-stage on node:20-bookworm-slim, the Node major package.json engines asks for', () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(3);
    const names = new Set(dockerfile.stages.map((s) => s.name));
    const external = dockerfile.stages.filter((s) => !names.has(s.base) && !s.base.includes('$'));
    expect([...new Set(external.map((s) => s.base))]).toEqual([BASE_IMAGE]);
    const engine = /^>=\s*(\d+)\./.exec(rootPackage.engines.node);
    expect(engine?.[1]).toBe(/^node:(\d+)-/.exec(BASE_IMAGE)?.[1]);
    expect(dockerfile.stages.map((s) => s.name).slice(0, 3)).toEqual(['manifests', 'build', 'runtime']);
  });

  it('copies every workspace manifest and the lock file before installing', () => {
    const copies = stage('manifests').instructions.filter((i) => i.keyword === 'COPY').map(parseCopy);
    const copied = copies.flatMap((c) => c.sources.map((src) => (c.dest.endsWith('/') ? posix.join(c.dest, basename(src)) : c.dest)));
    const expected = ['package.json', 'package-lock.json', ...rootPackage.workspaces.map((w) => `${w}/package.json`)];
    expect(copied.map((p) => p.replace(/^\.\//, '')).sort()).toEqual(expected.sort());
  });

  it('installs only from the lock file: npm ci, or npm install --no-save with the same flags when npm ci refuses the lock', () => {
    const installs: Array<{ stage: string; cmd: string }> = [];
    for (const s of dockerfile.stages) {
      let hasLock = lineage(s).slice(1).some((p) => p.name === 'manifests');
      for (const ins of s.instructions) {
        if (ins.keyword === 'COPY') {
          const c = parseCopy(ins);
          if (c.sources.includes('package-lock.json') || c.from === 'manifests') hasLock = true;
        }
        if (ins.keyword !== 'RUN') continue;
        expect(ins.args).not.toMatch(/\b(yarn|pnpm|npx)\b|\bnpm\s+(i|add|update|link)\b/);
        const npm = [...ins.args.matchAll(/\bnpm\s+(ci|install)\b((?:(?!\|\||&&|;|\s\}).)*)/g)];
        if (npm.length === 0) continue;
        expect({ line: ins.line, hasLock }).toEqual({ line: ins.line, hasLock: true });
        const flags = (m: RegExpMatchArray) => m[2].trim().split(/\s+/).filter((f) => f !== '--no-save').sort();
        const ci = npm.filter((m) => m[1] === 'ci');
        expect(ci).toHaveLength(1);
        for (const m of npm.filter((x) => x[1] === 'install')) {
          expect(m[2]).toContain('--no-save');
          expect(flags(m)).toEqual(flags(ci[0]));
          expect(ins.args).toMatch(/npm\s+ci\b[^|]*\|\|\s*npm\s+install\b/);
        }
        installs.push({ stage: s.name ?? String(s.index), cmd: ci[0][2].trim() });
      }
    }
    expect(installs.map((i) => i.stage)).toEqual(['build', 'runtime']);
    const runtime = installs[1].cmd.split(/\s+/);
    expect(runtime).toEqual(expect.arrayContaining(['--omit=dev', '"services/${SERVICE}"', '--include-workspace-root=false', '--ignore-scripts']));
    expect(runtime[runtime.indexOf('"services/${SERVICE}"') - 1]).toBe('--workspace');
  });

  it('builds everything in a stage that does not depend on SERVICE, so the six images share it', () => {
    const build = stage('build');
    const argAt = build.instructions.findIndex((i) => i.keyword === 'ARG' && i.args === 'SERVICE');
    const buildAt = build.instructions.findIndex((i) => i.keyword === 'RUN' && /npm run build/.test(i.args));
    expect(buildAt).toBeGreaterThanOrEqual(0);
    expect(argAt).toBeGreaterThan(buildAt);
  });

  describe('SERVICE', () => {
    const check = runs(stage('build')).find((r) => r.includes('case "${SERVICE}"'));

    function runCheck(service: string) {
      return spawnSync('sh', ['-c', check ?? 'exit 99'], { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH, SERVICE: service } });
    }

    it('is a required build argument of the whole file, without a default', () => {
      expect(dockerfile.globalArgs.map((a) => a.args)).toEqual(['SERVICE']);
      expect(check).toBeDefined();
      const accepted = /case "\$\{SERVICE\}" in\s+([a-z|-]+)\)/.exec(check ?? '')?.[1].split('|');
      expect(accepted?.sort()).toEqual([...ServiceNames].sort());
    });

    it.each([...ServiceNames])('passes the build stage check for %s', (service) => {
      expect(existsSync(join(ROOT, 'services', service, 'dist', 'main.bundle.js'))).toBe(true);
      const res = runCheck(service);
      expect({ status: res.status, stderr: res.stderr }).toEqual({ status: 0, stderr: '' });
    });

    it.each(['foo', '', 'gateway ', 'gateway;true', '*'])('fails the build with a clear message for %j', (service) => {
      const res = runCheck(service);
      expect(res.status).toBe(1);
      expect(res.stderr).toContain(`unknown SERVICE '${service}'`);
      for (const name of ServiceNames) expect(res.stderr).toContain(name);
    });
  });

  it('gives each service a final stage exposing exactly its DefaultPorts', () => {
    const final = dockerfile.stages[dockerfile.stages.length - 1];
    expect(final.base).toBe('ziggie-${SERVICE}');
    expect(final.instructions).toEqual([]);
    const perService = dockerfile.stages.filter((s) => s.name?.startsWith('ziggie-'));
    expect(perService.map((s) => s.name).sort()).toEqual(ServiceNames.map((n) => `ziggie-${n}`).sort());
    for (const s of perService) {
      const service = (s.name ?? '').slice('ziggie-'.length) as ServiceName;
      expect(s.base).toBe('runtime');
      const exposed = s.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map(Number);
      const { http, grpc } = DefaultPorts[service];
      expect({ service, exposed }).toEqual({ service, exposed: grpc ? [http, grpc] : [http] });
    }
    expect(lineage(stage('runtime')).flatMap((s) => s.instructions).filter((i) => i.keyword === 'EXPOSE')).toEqual([]);
  });

  it.each([...ServiceNames])('runs %s as user 10001 from /app, with a node entry point, a health check and only /tmp to write', (service) => {
    const image = imageInstructions(service);
    const last = (k: string) => image.filter((i) => i.keyword === k).pop();
    const user = last('USER')?.args ?? 'root';
    expect(user).toMatch(/^\d+:\d+$/);
    expect(user.split(':').map(Number).every((id) => id > 0)).toBe(true);
    expect(user).toBe('10001:10001');
    expect(last('WORKDIR')?.args).toBe('/app');

    const env = Object.assign({}, ...image.filter((i) => i.keyword === 'ENV').map(envOf)) as Record<string, string>;
    expect(env.NODE_ENV).toBe('production');
    expect(expand(env.ZIGGIE_SERVICE, { SERVICE: service })).toBe(service);
    for (const path of [env.DATA_DIR, env.HOME]) expect(path).toMatch(/^\/tmp(\/|$)/);
    expect(env.HTTP_HOST).toBe('0.0.0.0');

    // Exec form cannot expand SERVICE: the entry point is a fixed link to the service's bundle (ADR 0008).
    const entrypoint = execForm(last('ENTRYPOINT')?.args ?? '');
    expect(entrypoint.slice(-2)).toEqual(['node', '/app/main.js']);
    const link = image.find((i) => i.keyword === 'RUN' && /\bln -s\b/.test(i.args));
    expect(expand(link?.args ?? '', { SERVICE: service })).toBe(`ln -s "services/${service}/dist/main.bundle.js" main.js`);

    const health = last('HEALTHCHECK')?.args ?? '';
    expect(execForm(health.slice(health.indexOf('CMD')))).toEqual(['node', '/app/healthcheck.js']);
    const copied = image.filter((i) => i.keyword === 'COPY').map(parseCopy);
    expect(copied.some((c) => c.dest === 'healthcheck.js' && c.sources[0] === 'deploy/docker/healthcheck.js')).toBe(true);
  });

  it.each([...ServiceNames])('copies for %s only what exists: context files that .dockerignore keeps, or files of an earlier stage', (service) => {
    const vars = { SERVICE: service };
    for (const s of dockerfile.stages) {
      for (const c of s.instructions.filter((i) => i.keyword === 'COPY').map(parseCopy)) {
        for (const raw of c.sources) {
          const src = expand(raw, vars);
          if (c.from) {
            const from = stage(c.from);
            expect({ line: c.line, before: from.index < s.index }).toEqual({ line: c.line, before: true });
            const rel = posix.relative(workdir(from), src);
            expect(rel.startsWith('..')).toBe(false);
            if (from.name === 'manifests') {
              // Only what that stage copied: the whole of /src or one of its manifests.
              expect(rel === '' || rel.endsWith('package.json') || rel === 'package-lock.json').toBe(true);
            } else {
              // The build stage holds the repository as built: its dist folders must exist here too.
              expect({ line: c.line, src, exists: existsSync(join(ROOT, rel)) }).toEqual({ line: c.line, src, exists: true });
            }
            continue;
          }
          expect({ line: c.line, src, exists: existsSync(join(ROOT, src)) }).toEqual({ line: c.line, src, exists: true });
          expect({ line: c.line, src, ignored: isIgnored(rules, src) }).toEqual({ line: c.line, src, ignored: false });
          if (statSync(join(ROOT, src)).isDirectory()) {
            const sent = filesUnder(join(ROOT, src), (rel) => isIgnored(rules, `${src}/${rel}`));
            expect(sent.length).toBeGreaterThan(0);
            expect(sent.filter((f) => /(^|\/)(dist|node_modules|test)\//.test(f))).toEqual([]);
          }
        }
      }
    }
  });
});

describe('.dockerignore', () => {
  it.each([
    'node_modules/express/package.json',
    'services/gateway/node_modules/x/index.js',
    'libs/platform/node_modules/jose/package.json',
    'libs/platform/dist/index.js',
    'services/mcp-gateway/dist/main.js',
    'libs/contracts/tsconfig.tsbuildinfo',
    '.git/HEAD',
    '.ziggie/jwt-secret',
    '.ziggie/orchestrator/pgdata/PG_VERSION',
    'test/bench/stack/run.js',
    'test/e2e/tasks.e2e-spec.ts',
    'services/gateway/test/audit.int-spec.ts',
    'coverage/lcov.info',
    'docs/api.md',
    'README.md',
    'deploy/helm/ziggie/Chart.yaml',
    'observability/prometheus/rules.yaml',
    '.env',
  ])('keeps %s out of the build context', (path) => {
    expect(isIgnored(rules, path)).toBe(true);
  });

  it.each([
    'package.json',
    'package-lock.json',
    'tsconfig.base.json',
    'tsconfig.build.json',
    'libs/platform/src/index.ts',
    'libs/contracts/src/gen/ziggie/v1/common.ts',
    'services/gateway/src/main.ts',
    'cli/src/main.ts',
    'deploy/docker/healthcheck.js',
    'deploy/docker/Dockerfile',
    'libs/platform/tsconfig.json',
    'services/gateway/tsconfig.json',
    'cli/tsconfig.json',
  ])('sends %s', (path) => {
    expect(isIgnored(rules, path)).toBe(false);
  });
});

// --- The production install, reproduced ---------------------------------------------------------

interface Closure {
  status: number | null;
  stderr: string;
  paths: string[];
}

function npmLs(service: ServiceName): Promise<Closure> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['ls', '--omit=dev', '--workspace', `services/${service}`, '--all', '--parseable'], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr, paths: [...new Set(stdout.split('\n').filter(Boolean))] }));
  });
}

const closures = new Map<ServiceName, Closure>();

/** Hard links where the file system allows them (fast, no copy), copies where it does not. */
function replicate(src: string, dest: string, skipOwnNodeModules: boolean): void {
  const st = lstatSync(src);
  if (st.isSymbolicLink()) {
    if (!existsSync(dest)) symlinkSync(readlinkSync(src), dest);
  } else if (st.isDirectory()) {
    mkdirSync(dest, { recursive: true });
    for (const name of readdirSync(src)) {
      if (skipOwnNodeModules && name === 'node_modules') continue;
      replicate(join(src, name), join(dest, name), false);
    }
  } else {
    try {
      linkSync(src, dest);
    } catch {
      copyFileSync(src, dest);
    }
  }
}

function copyIntoImage(app: string, c: Copy, vars: Record<string, string>): void {
  for (const raw of c.sources) {
    const src = expand(raw, vars);
    const dest = join(app, expand(c.dest, vars));
    if (c.from === 'manifests') {
      // That stage's own COPY steps, replayed under the destination.
      const manifests = stage('manifests');
      const root = posix.relative(workdir(manifests), src);
      expect(root).toBe('');
      for (const m of manifests.instructions.filter((i) => i.keyword === 'COPY').map(parseCopy)) {
        for (const file of m.sources) {
          const target = join(dest, m.dest.endsWith('/') ? join(m.dest, basename(file)) : m.dest);
          mkdirSync(dirname(target), { recursive: true });
          copyFileSync(join(ROOT, file), target);
        }
      }
      continue;
    }
    const from = c.from ? join(ROOT, posix.relative(workdir(stage(c.from)), src)) : join(ROOT, src);
    const target = !statSync(from).isDirectory() && c.dest.endsWith('/') ? join(dest, basename(from)) : dest;
    mkdirSync(dirname(target), { recursive: true });
    replicate(from, target, false);
  }
}

/**
 * The runtime stage of one service, step by step, in a temporary directory standing for /app.
 * `npm ci --omit=dev --workspace` is replaced by the packages npm lists for exactly that; the OS
 * package step (tini) is skipped; every other RUN runs as written.
 */
function replayRuntime(service: ServiceName, app: string): void {
  const vars: Record<string, string> = { SERVICE: service };
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: app, SERVICE: service };
  const runtime = stage('runtime');
  expect(workdir(runtime)).toBe('/app');
  for (const ins of runtime.instructions) {
    if (ins.keyword === 'COPY') {
      copyIntoImage(app, parseCopy(ins), vars);
    } else if (ins.keyword === 'ENV') {
      for (const [k, v] of Object.entries(envOf(ins))) env[k] = expand(v, vars);
    } else if (ins.keyword === 'RUN') {
      if (/\bapt-get\b/.test(ins.args)) continue;
      if (/\bnpm\s+ci\b/.test(ins.args)) {
        for (const path of closures.get(service)?.paths ?? []) {
          const rel = relative(ROOT, path);
          if (!rel.split(sep).includes('node_modules')) continue;
          mkdirSync(dirname(join(app, rel)), { recursive: true });
          replicate(path, join(app, rel), true);
        }
        continue;
      }
      const res = spawnSync('sh', ['-c', ins.args], { cwd: app, env, encoding: 'utf8', timeout: 60_000 });
      if (res.status !== 0) throw new Error(`RUN at line ${ins.line} failed for ${service} (${res.status}):\n${res.stdout}${res.stderr}`);
    }
  }
}

function mcpInitialize(args: string[], cwd: string): Promise<{ name?: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd, env: { PATH: process.env.PATH, HOME: cwd }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let result: { name?: string } | undefined;
    let failure: Error | undefined;
    const timer = setTimeout(() => {
      failure = new Error(`no initialize answer within 20 s: ${err}`);
      child.kill('SIGKILL');
    }, 20_000);
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        try {
          const msg = JSON.parse(line) as { id?: number; result?: { serverInfo?: { name?: string } }; error?: unknown };
          if (msg.id !== 1) continue;
          if (msg.result?.serverInfo) result = msg.result.serverInfo;
          else failure = new Error(`initialize failed: ${line}`);
          child.kill();
        } catch {
          // Not a JSON-RPC line.
        }
      }
    });
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      if (result) resolve(result);
      else reject(failure ?? new Error(`server exited: ${err}`));
    });
    child.stdin.write(
      `${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'docker-deploy-spec', version: '1' } } })}\n`,
    );
  });
}

describe('production dependencies', () => {
  beforeAll(async () => {
    for (const s of ServiceNames) {
      if (!existsSync(join(ROOT, 'services', s, 'dist', BUNDLE))) throw new Error('build first: npm run build');
    }
    const listed = await Promise.all(ServiceNames.map(npmLs));
    ServiceNames.forEach((s, i) => closures.set(s, listed[i]));
  }, 120_000);

  it.each([...ServiceNames])('npm ls --omit=dev --workspace services/%s resolves every one', (service) => {
    const closure = closures.get(service);
    expect({ status: closure?.status, problems: closure?.stderr.split('\n').filter((l) => /ERR|missing|invalid/.test(l)) }).toEqual({ status: 0, problems: [] });
  });

  it.each([...ServiceNames])('every package the built %s and its libs import is one of its production dependencies', (service) => {
    const closure = new Set((closures.get(service)?.paths ?? []).map((p) => realpathSync(p)));
    const declared = new Set(
      ['libs/contracts', 'libs/platform', `services/${service}`].flatMap((w) => {
        const pkg = JSON.parse(readFileSync(join(ROOT, w, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
        return Object.keys(pkg.dependencies ?? {});
      }),
    );
    const problems: string[] = [];
    const pairs = importsOf(ROOT, ['libs/contracts/dist', 'libs/platform/dist', `services/${service}/dist`]);
    const workspaceImports = pairs.filter(([, spec]) => spec.startsWith('@ziggie/'));
    for (const [file, spec] of workspaceImports) {
      if (!declared.has(packageName(spec))) problems.push(`${relative(ROOT, file)}: ${spec} is not declared`);
    }
    for (const r of resolveAll(pairs.filter(([, spec]) => !spec.startsWith('@ziggie/')))) {
      const where = `${relative(ROOT, r.file)}: ${r.spec}`;
      if (!r.path) {
        problems.push(`${where} does not resolve (${r.error})`);
        continue;
      }
      const pkg = packageDir(r.path);
      if (!pkg || !closure.has(pkg)) problems.push(`${where} resolves to ${relative(ROOT, r.path)}, not a production dependency`);
    }
    expect(problems).toEqual([]);
  });

  it.each([...ServiceNames])('the bundle of %s requires at run time only production dependencies and optional packages', (service) => {
    const closure = new Set((closures.get(service)?.paths ?? []).map((p) => realpathSync(p)));
    const runtime = bundleRequires(ROOT, service);
    for (const name of RUNTIME_MODULES.filter((m) => m !== '@kubernetes/client-node' || service === 'mcp-gateway').filter((m) => m !== 'thread-stream')) {
      expect(runtime.map(([, spec]) => packageName(spec))).toContain(name);
    }
    const problems = resolveAll(runtime)
      .filter((r) => !r.path || !closure.has(packageDir(r.path) ?? ''))
      .map((r) => `${r.spec}: ${r.path ? `resolves to ${relative(ROOT, r.path)}, not a production dependency` : r.error}`);
    expect(problems).toEqual([]);
  });

  describe.each(REPLAYED)('the runtime stage of %s, replayed outside a container', (service) => {
    let app: string;

    beforeAll(() => {
      app = mkdtempSync(join(tmpdir(), `ziggie-image-${service}-`));
      replayRuntime(service, app);
    }, 120_000);

    afterAll(() => {
      if (app) rmSync(app, { recursive: true, force: true });
    });

    it('passed every RUN step, the smoke test included, and links main.js to the service', () => {
      expect(realpathSync(join(app, 'main.js'))).toBe(realpathSync(join(app, 'services', service, 'dist', BUNDLE)));
      expect(existsSync(join(app, 'services', service, 'package.json'))).toBe(true);
      expect(existsSync(join(app, 'healthcheck.js'))).toBe(true);
    });

    it('holds no dev dependency and no other service', () => {
      const installed = readdirSync(join(app, 'node_modules')).flatMap((name) =>
        name.startsWith('@') ? readdirSync(join(app, 'node_modules', name)).map((n) => `${name}/${n}`) : [name],
      );
      const dev = installed.filter((name) => lock.packages[`node_modules/${name}`]?.dev === true);
      expect(dev).toEqual([]);
      for (const name of ['typescript', 'jest', '@swc/core', 'eslint']) expect(installed).not.toContain(name);
      expect(installed.filter((n) => n.startsWith('@ziggie/')).sort()).toEqual(['@ziggie/contracts', '@ziggie/platform', `@ziggie/${service}`].sort());
      expect(readdirSync(join(app, 'services')).filter((d) => existsSync(join(app, 'services', d, 'dist')))).toEqual([service]);
    });

    it('resolves every import of the built code inside the image', () => {
      const problems: string[] = [];
      const real = realpathSync(app);
      const pairs = [...importsOf(app, ['libs/contracts/dist', 'libs/platform/dist', `services/${service}/dist`]), ...bundleRequires(app, service)];
      expect(pairs.length).toBeGreaterThan(0);
      for (const r of resolveAll(pairs)) {
        if (!r.path) problems.push(`${relative(app, r.file)}: ${r.spec}: ${r.error}`);
        else if (!r.path.startsWith(real + sep)) problems.push(`${relative(app, r.file)}: ${r.spec} resolves outside the image: ${r.path}`);
      }
      expect(problems).toEqual([]);
    });

    if (service === 'mcp-gateway') {
      it('runs the bundled stdio MCP servers from the paths deploy/docker/README.md gives', async () => {
        const readme = readFileSync(join(ROOT, 'deploy', 'docker', 'README.md'), 'utf8');
        const paths = [...readme.matchAll(/"\/app\/(node_modules\/@modelcontextprotocol\/[^"]+)"/g)].map((m) => m[1]);
        expect(paths).toEqual([
          'node_modules/@modelcontextprotocol/server-everything/dist/index.js',
          'node_modules/@modelcontextprotocol/server-filesystem/dist/index.js',
        ]);
        mkdirSync(join(app, 'artifacts'));
        const everything = await mcpInitialize([join(app, paths[0]), 'stdio'], app);
        const files = await mcpInitialize([join(app, paths[1]), join(app, 'artifacts')], app);
        expect(everything.name).toMatch(/everything/i);
        expect(files.name).toMatch(/file/i);
      }, 45_000);
    }
  });
});

describe('healthcheck.js', () => {
  let server: Server;
  let status = 200;
  let port: number;
  let app: string;

  beforeAll(async () => {
    // Laid out as in the image: /app/healthcheck.js beside /app/libs/platform/dist.
    app = mkdtempSync(join(tmpdir(), 'ziggie-health-'));
    replicate(join(ROOT, 'deploy', 'docker', 'healthcheck.js'), join(app, 'healthcheck.js'), false);
    mkdirSync(join(app, 'libs', 'platform'), { recursive: true });
    replicate(join(ROOT, 'libs', 'platform', 'dist'), join(app, 'libs', 'platform', 'dist'), false);
    server = createServer((req, res) => {
      res.statusCode = req.url === '/healthz' ? status : 404;
      res.end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(app, { recursive: true, force: true });
  });

  function check(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [join(app, 'healthcheck.js')], { env: { PATH: process.env.PATH, ...env } });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stderr }));
    });
  }

  it('exits 0 when /healthz answers 200, on a wildcard bind address too', async () => {
    status = 200;
    expect((await check({ HTTP_PORT: String(port) })).code).toBe(0);
    expect((await check({ HTTP_PORT: String(port), HTTP_HOST: '0.0.0.0', ZIGGIE_SERVICE: 'gateway' })).code).toBe(0);
    expect((await check({ HTTP_PORT: String(port), HTTP_HOST: '::' })).code).toBe(0);
  });

  it('exits 1 when /healthz fails, nothing listens or the service is unknown', async () => {
    status = 503;
    expect(await check({ HTTP_PORT: String(port) })).toEqual({ code: 1, stderr: 'healthcheck: /healthz answered 503\n' });
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const free = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    expect((await check({ HTTP_PORT: String(free) })).code).toBe(1);
    expect(await check({ ZIGGIE_SERVICE: 'nope' })).toEqual({ code: 1, stderr: 'healthcheck: unknown ZIGGIE_SERVICE "nope" and no HTTP_PORT\n' });
  });
});
