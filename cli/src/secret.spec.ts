import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './errors';
import { loadOrCreateJwtSecret, readJwtSecret, secretPath } from './secret';

describe('JWT secret', () => {
  let dir: string;
  let oldUmask: number;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ziggie-secret-'));
    // A permissive umask must not leak into the secret file's mode.
    oldUmask = process.umask(0o000);
  });
  afterEach(async () => {
    process.umask(oldUmask);
    await rm(dir, { recursive: true, force: true });
  });

  it('generates 48 random bytes as base64url in <dataDir>/jwt-secret with mode 0600', async () => {
    const dataDir = join(dir, 'nested', '.ziggie');
    const got = await loadOrCreateJwtSecret(dataDir, {});
    expect(got.source).toBe('generated');
    expect(got.path).toBe(secretPath(dataDir));
    expect(got.secret).toMatch(/^[A-Za-z0-9_-]{64}$/);
    expect(Buffer.from(got.secret, 'base64url')).toHaveLength(48);
    expect((await stat(secretPath(dataDir))).mode & 0o777).toBe(0o600);
    expect((await readFile(secretPath(dataDir), 'utf8')).trim()).toBe(got.secret);
  });

  it('reuses the stored secret on the next start', async () => {
    const first = await loadOrCreateJwtSecret(dir, {});
    const second = await loadOrCreateJwtSecret(dir, {});
    expect(second).toEqual({ secret: first.secret, source: 'file', path: secretPath(dir) });
  });

  it('prefers ZIGGIE_JWT_SECRET and then writes nothing', async () => {
    const got = await loadOrCreateJwtSecret(dir, { ZIGGIE_JWT_SECRET: ' from-the-environment-123 ' });
    expect(got).toEqual({ secret: 'from-the-environment-123', source: 'env' });
    await expect(stat(secretPath(dir))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('readJwtSecret returns undefined when there is neither', async () => {
    await expect(readJwtSecret(dir, {})).resolves.toBeUndefined();
  });

  it('refuses secrets the services would refuse', async () => {
    await expect(readJwtSecret(dir, { ZIGGIE_JWT_SECRET: 'short' })).rejects.toThrow(CliError);
    await writeFile(secretPath(dir), 'tiny\n');
    await expect(readJwtSecret(dir, {})).rejects.toThrow(/shorter than 16/);
  });

  it('two concurrent first starts agree on one secret', async () => {
    const [a, b] = await Promise.all([loadOrCreateJwtSecret(dir, {}), loadOrCreateJwtSecret(dir, {})]);
    expect(a.secret).toBe(b.secret);
  });
});
