import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CliError } from './errors';

export const JWT_ISSUER = 'ziggie-local';
export const JWT_AUDIENCE = 'ziggie-api';
export const SECRET_FILE = 'jwt-secret';
/** The services refuse shorter HMAC secrets (libs/platform config), so the CLI refuses them first. */
export const MIN_SECRET_LENGTH = 16;

export type SecretSource = 'env' | 'file' | 'generated';

export interface JwtSecret {
  secret: string;
  source: SecretSource;
  /** The file it was read from or written to. */
  path?: string;
}

export function secretPath(dataDir: string): string {
  return join(dataDir, SECRET_FILE);
}

function checked(secret: string, where: string): string {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new CliError(`the JWT secret from ${where} is shorter than ${MIN_SECRET_LENGTH} characters`);
  }
  return secret;
}

function envSecret(env: Record<string, string | undefined>): string | undefined {
  const v = env.ZIGGIE_JWT_SECRET?.trim();
  return v ? v : undefined;
}

async function readSecretFile(path: string): Promise<string | undefined> {
  try {
    return checked((await readFile(path, 'utf8')).trim(), path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** ZIGGIE_JWT_SECRET, else `<dataDir>/jwt-secret`; undefined when neither exists. */
export async function readJwtSecret(
  dataDir: string,
  env: Record<string, string | undefined> = process.env,
): Promise<JwtSecret | undefined> {
  const fromEnv = envSecret(env);
  if (fromEnv) return { secret: checked(fromEnv, 'ZIGGIE_JWT_SECRET'), source: 'env' };
  const path = secretPath(dataDir);
  const fromFile = await readSecretFile(path);
  return fromFile ? { secret: fromFile, source: 'file', path } : undefined;
}

/** Like readJwtSecret, but generates and stores a secret (48 random bytes, mode 0600) when there is none. */
export async function loadOrCreateJwtSecret(
  dataDir: string,
  env: Record<string, string | undefined> = process.env,
): Promise<JwtSecret> {
  const existing = await readJwtSecret(dataDir, env);
  if (existing) return existing;
  await mkdir(dataDir, { recursive: true });
  const path = secretPath(dataDir);
  const secret = randomBytes(48).toString('base64url');
  // Written aside and linked into place: link() fails if the file exists, so two stacks starting
  // at once agree on one secret, and neither can read a half-written file.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    // The mode given to open() is filtered by the umask; the secret must be 0600 whatever it is.
    await chmod(tmp, 0o600);
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const raced = await readSecretFile(path);
    if (raced) return { secret: raced, source: 'file', path };
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  return { secret, source: 'generated', path };
}
