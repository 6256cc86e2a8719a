import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocateFreePorts, startStack, type StackHandle } from '../../../cli/src/stack';
import { HttpRecorder } from './http';
import { rsaKeyPair, roleToken, type KeyPair } from './jws';

export const CONSOLE_ORIGIN = 'http://console.example.test';
export const STACK_START_TIMEOUT_MS = 150_000;
export const STACK_STOP_TIMEOUT_MS = 60_000;

/** Rate limits high enough that no security spec is ever throttled. */
export const UNTHROTTLED: Record<string, string> = {
  RATE_LIMIT_USER_PER_MIN: '1000000',
  RATE_LIMIT_WORKSPACE_PER_MIN: '1000000',
  RATE_LIMIT_ADMIN_PER_MIN: '1000000',
};

/**
 * The stack configuration every security spec runs against: rate limits out of the way, no
 * SSRF exceptions at all (not even loopback), one allowed CORS origin, and both HS256 and
 * RS256 tokens accepted.
 */
export function securityEnv(publicKeyFile: string): Record<string, string> {
  return {
    ...UNTHROTTLED,
    MCP_SSRF_ALLOW: '',
    CORS_ORIGINS: CONSOLE_ORIGIN,
    JWT_ALGORITHMS: 'HS256,RS256',
    JWT_PUBLIC_KEY_FILE: publicKeyFile,
  };
}

export interface SecurityStack {
  stack: StackHandle;
  dataDir: string;
  /** The key pair whose public half is JWT_PUBLIC_KEY_FILE. */
  rsa: KeyPair;
  publicKeyFile: string;
  http: HttpRecorder;
  /** An HS256 token for these roles and workspaces. */
  token(roles: string[], workspaces?: string[]): string;
  adminToken: string;
}

/**
 * Starts one stack for the calling spec file (beforeAll) and stops it (afterAll). The holder is
 * filled in beforeAll; its recorder exists from the start so specs can capture it when defined.
 */
export function securityStackHooks(prefix: string): SecurityStack {
  const holder = {} as SecurityStack;
  holder.http = new HttpRecorder(
    () => holder.stack.gatewayUrl,
    () => holder.adminToken,
  );
  beforeAll(async () => {
    holder.dataDir = mkdtempSync(join(tmpdir(), `ziggie-${prefix}-`));
    holder.rsa = rsaKeyPair();
    holder.publicKeyFile = join(holder.dataDir, 'jwt-public.pem');
    writeFileSync(holder.publicKeyFile, holder.rsa.publicPem, { mode: 0o600 });
    holder.stack = await startStack({ dataDir: holder.dataDir, ports: await allocateFreePorts(), logLevel: 'warn', env: securityEnv(holder.publicKeyFile) });
    holder.token = (roles, workspaces = ['*']) => roleToken(holder.stack.jwtSecret, roles, workspaces);
    holder.adminToken = holder.token(['admin']);
  }, STACK_START_TIMEOUT_MS);
  afterAll(async () => {
    await holder.stack?.stop();
    if (holder.dataDir) rmSync(holder.dataDir, { recursive: true, force: true });
  }, STACK_STOP_TIMEOUT_MS);
  return holder;
}
