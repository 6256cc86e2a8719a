// SSRF guard for upstream URLs: only http(s)/ws(s), no credentials in the URL, and no host that is
// or resolves to a private, loopback, link-local, metadata or otherwise non-public address unless
// MCP_SSRF_ALLOW lists its range.
//
// The check resolves the host when it runs; a hostile DNS server can answer differently when the
// connection is made later (DNS rebinding). Check again right before connecting where that matters.
import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import { ZiggieError } from '@ziggie/contracts';
import ipaddr from 'ipaddr.js';

type IPv4 = ipaddr.IPv4;
type IPv6 = ipaddr.IPv6;
type IP = IPv4 | IPv6;

/** One MCP_SSRF_ALLOW entry, as written and parsed. */
export interface AllowedRange {
  readonly cidr: string;
  readonly address: IP;
  readonly prefix: number;
}

export interface AddressVerdict {
  readonly allowed: boolean;
  /** The address as checked (normalised). */
  readonly address: string;
  /**
   * ipaddr.js range name ('unicast', 'private', 'loopback', ...), 'metadata', one of the extra
   * names below, or for an IPv6 address embedding an IPv4 one '<v6 range>/<v4 range>'
   * (e.g. 'ipv4Mapped/loopback').
   */
  readonly range: string;
}

export type LookupAll = (hostname: string) => Promise<ReadonlyArray<{ address: string; family: number }>>;

export interface UrlGuardOptions {
  /** Resolver returning every address of a host (default dns.promises.lookup with all: true). */
  lookup?: LookupAll;
}

const ALLOWED_SCHEMES = new Set(['http:', 'https:', 'ws:', 'wss:']);

/** Cloud metadata endpoints (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba): allowed only when listed exactly. */
const METADATA: readonly IP[] = ['169.254.169.254', 'fd00:ec2::254', '100.100.100.200'].map((a) => ipaddr.parse(a));

/**
 * Non-public ranges that ipaddr.js 2 reports as 'unicast': IPv4-compatible IPv6 (::a.b.c.d,
 * deprecated; some stacks still route it to IPv4).
 */
const EXTRA_REFUSED: ReadonlyArray<{ name: string; range: [IP, number] }> = [{ name: 'ipv4Compatible', range: ipaddr.parseCIDR('::/96') }];

/** RFC 6052 well-known NAT64 prefix; the /48 local-use prefix (RFC 8215) may embed differently. */
const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96') as [IPv6, number];

function inRange(ip: IP, address: IP, prefix: number): boolean {
  if (ip.kind() === 'ipv4' && address.kind() === 'ipv4') return (ip as IPv4).match(address as IPv4, prefix);
  if (ip.kind() === 'ipv6' && address.kind() === 'ipv6') return (ip as IPv6).match(address as IPv6, prefix);
  return false;
}

function sameAddress(a: IP, b: IP): boolean {
  return a.kind() === b.kind() && a.toNormalizedString() === b.toNormalizedString();
}

/**
 * The IPv4 address an IPv6 one stands for: IPv4-mapped (::ffff:a.b.c.d), IPv4-translated
 * (::ffff:0:a.b.c.d, RFC 6145), NAT64 (64:ff9b::a.b.c.d, RFC 6052) and 6to4 (2002:aabb:ccdd::).
 */
function embeddedIPv4(ip: IPv6): IPv4 | undefined {
  const p = ip.parts;
  const v4 = (hi: number, lo: number): IPv4 => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  switch (ip.range()) {
    case 'ipv4Mapped':
    case 'rfc6145':
      return v4(p[6]!, p[7]!);
    case 'rfc6052':
      return ip.match(NAT64_WELL_KNOWN) ? v4(p[6]!, p[7]!) : undefined;
    case '6to4':
      return v4(p[1]!, p[2]!);
    default:
      return undefined;
  }
}

/** The address itself and, for IPv6, the IPv4 address it embeds. */
function forms(ip: IP): IP[] {
  const embedded = ip.kind() === 'ipv6' ? embeddedIPv4(ip as IPv6) : undefined;
  return embedded ? [ip, embedded] : [ip];
}

function judge(ip: IP, allow: readonly AllowedRange[]): { allowed: boolean; range: string } {
  // Metadata endpoints first: a broad allow range (169.254.0.0/16, 0.0.0.0/0) does not open them.
  if (forms(ip).some((f) => METADATA.some((m) => sameAddress(f, m)))) {
    const exact = allow.some((r) => r.prefix === (r.address.kind() === 'ipv4' ? 32 : 128) && forms(ip).some((f) => sameAddress(f, r.address)));
    return { allowed: exact, range: 'metadata' };
  }
  const range: string = ip.range();
  if (allow.some((r) => inRange(ip, r.address, r.prefix))) return { allowed: true, range };
  if (ip.kind() === 'ipv6') {
    const embedded = embeddedIPv4(ip as IPv6);
    if (embedded) {
      const inner = judge(embedded, allow);
      return { allowed: inner.allowed, range: `${range}/${inner.range}` };
    }
  }
  // Everything ipaddr.js does not call unicast is refused: private, loopback, linkLocal,
  // uniqueLocal, carrierGradeNat, unspecified, broadcast, multicast, reserved (incl. benchmarking),
  // deprecatedSiteLocal, discard, teredo, RFC 8215 local NAT64, ...
  if (range !== 'unicast') return { allowed: false, range };
  const extra = EXTRA_REFUSED.find((e) => inRange(ip, e.range[0], e.range[1]));
  return extra ? { allowed: false, range: extra.name } : { allowed: true, range };
}

/**
 * Whether a connection to this literal address may be made, given the allow list. Pure: no DNS.
 * An address that cannot be parsed is refused with range 'invalid'.
 */
export function checkResolvedAddress(address: string, allow: readonly AllowedRange[] = []): AddressVerdict {
  let ip: IP;
  try {
    ip = ipaddr.parse(address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address);
  } catch {
    return { allowed: false, address, range: 'invalid' };
  }
  return { address: ip.toString(), ...judge(ip, allow) };
}

/** Parses a comma-separated list of CIDRs (a bare address means /32 or /128); throws listing every invalid entry. */
export function parseAllowList(list: string): AllowedRange[] {
  const entries = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const invalid: string[] = [];
  const ranges: AllowedRange[] = [];
  for (const cidr of entries) {
    const slash = cidr.indexOf('/');
    const addr = slash === -1 ? cidr : cidr.slice(0, slash);
    // Only dotted-quad IPv4: ipaddr.js would read "10/8" as 0.0.0.10.
    const valid = isIP(addr) !== 0 && (slash === -1 || /^\d{1,3}$/.test(cidr.slice(slash + 1)));
    if (!valid) {
      invalid.push(cidr);
      continue;
    }
    try {
      const [address, prefix] = slash === -1 ? ((a: IP): [IP, number] => [a, a.kind() === 'ipv4' ? 32 : 128])(ipaddr.parse(addr)) : ipaddr.parseCIDR(cidr);
      ranges.push({ cidr, address, prefix });
    } catch {
      invalid.push(cidr);
    }
  }
  if (invalid.length > 0) throw new Error(`MCP_SSRF_ALLOW: invalid CIDR ${invalid.map((c) => JSON.stringify(c)).join(', ')}`);
  return ranges;
}

function refuse(message: string, extras: Record<string, unknown> = {}): ZiggieError {
  return new ZiggieError('URL_NOT_ALLOWED', message, extras);
}

export class UrlGuard {
  readonly allow: readonly AllowedRange[];
  private readonly lookup: LookupAll;

  /** @param allow comma-separated CIDRs (MCP_SSRF_ALLOW); throws listing the invalid ones. */
  constructor(allow = '', opts: UrlGuardOptions = {}) {
    this.allow = parseAllowList(allow);
    this.lookup = opts.lookup ?? ((host) => dns.lookup(host, { all: true, verbatim: true }));
  }

  /** Throws ZiggieError URL_NOT_ALLOWED unless the URL may be used as an upstream. */
  async check(url: string): Promise<void> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw refuse('upstream URL is not a valid URL');
    }
    // WHATWG URL has already normalised the host: 2130706433, 0x7f.1 and 0177.0.0.1 are 127.0.0.1.
    const host = parsed.hostname;
    if (!ALLOWED_SCHEMES.has(parsed.protocol)) {
      throw refuse(`upstream URL for host ${host || '(none)'} uses scheme ${parsed.protocol}; only http, https, ws and wss are allowed`, {
        host,
      });
    }
    if (parsed.username !== '' || parsed.password !== '') {
      throw refuse(`upstream URL for host ${host} carries credentials; pass them as headers instead`, { host });
    }
    const literal = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    let addresses: string[];
    if (isIP(literal) !== 0) {
      addresses = [literal];
    } else {
      try {
        addresses = (await this.lookup(host)).map((a) => a.address);
      } catch (err) {
        throw refuse(`upstream host ${host}: cannot resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { host });
      }
      if (addresses.length === 0) throw refuse(`upstream host ${host}: cannot resolve (no addresses)`, { host });
    }
    // Every address must pass: the connection may go to any of them.
    for (const address of addresses) this.checkAddress(host, address);
  }

  /** Throws URL_NOT_ALLOWED when `address` (a resolved address of `host`) is refused. */
  checkAddress(host: string, address: string): void {
    const verdict = checkResolvedAddress(address, this.allow);
    if (verdict.allowed) return;
    const how = host === verdict.address || host === `[${verdict.address}]` ? 'is' : `resolves to ${verdict.address}, which is`;
    const hint = verdict.range === 'metadata' ? 'only an exact /32 or /128 entry in MCP_SSRF_ALLOW opens it' : 'allow it with MCP_SSRF_ALLOW';
    throw refuse(`upstream host ${host} ${how} in the refused range ${verdict.range} (${hint})`, {
      host,
      address: verdict.address,
      range: verdict.range,
    });
  }
}
