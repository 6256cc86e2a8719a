import { isIP } from 'node:net';
import { PlatformConfig, type TrustProxy } from '@ziggie/platform';
import { z } from 'zod';

/** TRUST_PROXY as the HTTP server takes it: off, every hop, a number of hops, or the proxies' addresses. */
type TrustProxySetting = Exclude<TrustProxy, string>;

const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isProxyAddress(token: string): boolean {
  if (NAMED_RANGES.has(token)) return true;
  const [address, prefix, ...rest] = token.split('/');
  if (rest.length > 0 || !address) return false;
  const family = isIP(address);
  if (family === 0) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

export const auditEnv = {
  /** Audit records older than this many days are deleted by the hourly retention job. */
  AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).default(90),
  /**
   * Which proxies may set X-Forwarded-For, i.e. where the audited (and rate-limited) client IP
   * comes from. Off by default: the IP is the TCP peer. Behind Kong set the addresses Kong
   * connects from (e.g. `10.0.0.0/8`, or `loopback` when it runs on the same host), or the
   * number of proxy hops; `true` trusts any sender and lets clients forge their IP.
   */
  TRUST_PROXY: z
    .string()
    .optional()
    .transform((value, ctx): TrustProxySetting => {
      const v = (value ?? '').trim();
      if (v === '' || v === 'false') return false;
      if (v === 'true') return true;
      if (/^\d+$/.test(v)) return Number(v);
      const tokens = v.split(',').map((t) => t.trim());
      const bad = tokens.filter((t) => !isProxyAddress(t));
      if (bad.length > 0) {
        ctx.addIssue({ code: 'custom', message: `expected false, true, a hop count, or addresses/CIDRs/loopback/linklocal/uniquelocal (bad: ${bad.join(', ')})` });
        return z.NEVER;
      }
      return tokens;
    }),
};

export interface AuditExtra {
  AUDIT_RETENTION_DAYS: number;
  TRUST_PROXY: TrustProxySetting;
}

export type AuditConfig = PlatformConfig & { extra: AuditExtra };
