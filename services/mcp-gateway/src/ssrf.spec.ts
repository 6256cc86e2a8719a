import { promises as dns } from 'node:dns';
import { ZiggieError } from '@ziggie/contracts';
import { checkResolvedAddress, LookupAll, parseAllowList, UrlGuard } from './ssrf';

const LOCAL_DEFAULT = '127.0.0.0/8,::1/128'; // the MCP_SSRF_ALLOW default

/** Fake DNS; only `localhost` goes to the real resolver (no network access). */
const fakeDns: Record<string, string[]> = {
  'public.example': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'],
  'mixed.example': ['93.184.216.34', '10.0.0.5'],
  'rebind.example': ['169.254.169.254'],
  'empty.example': [],
};
const lookup: LookupAll = async (host) => {
  if (host === 'localhost') return dns.lookup(host, { all: true });
  const addresses = fakeDns[host];
  if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};

type Expect = 'allowed' | { range?: string; message?: RegExp };

const cases: Array<[url: string, allow: string, expected: Expect]> = [
  // private / shared / loopback IPv4
  ['http://10.0.0.1/', '', { range: 'private' }],
  ['http://172.16.5.4:8080/mcp', '', { range: 'private' }],
  ['http://192.168.1.1/', '', { range: 'private' }],
  ['http://100.64.0.1/', '', { range: 'carrierGradeNat' }],
  ['http://127.0.0.1/', '', { range: 'loopback' }],
  ['http://127.0.0.1:3000/mcp', LOCAL_DEFAULT, 'allowed'],
  ['http://10.1.2.3/', '10.0.0.0/8', 'allowed'],
  ['http://10.1.2.3/', '10.9.0.0/16', { range: 'private' }],
  // unspecified, broadcast, multicast, reserved, benchmarking
  ['http://0.0.0.0/', LOCAL_DEFAULT, { range: 'unspecified' }],
  ['http://0/', '', { range: 'unspecified' }],
  ['http://[::]/', LOCAL_DEFAULT, { range: 'unspecified' }],
  ['http://255.255.255.255/', '', { range: 'broadcast' }],
  ['http://224.0.0.1/', '', { range: 'multicast' }],
  ['http://240.0.0.1/', '', { range: 'reserved' }],
  ['http://198.18.0.1/', '', { range: 'reserved' }], // benchmarking
  // IPv6
  ['http://[::1]/', '', { range: 'loopback' }],
  ['http://[::1]:8080/', LOCAL_DEFAULT, 'allowed'],
  ['http://[fc00::1]/', '', { range: 'uniqueLocal' }],
  ['http://[fd12:3456::1]/', 'fd12::/16', 'allowed'],
  ['http://[fe80::1]/', '', { range: 'linkLocal' }],
  ['http://[ff02::1]/', '', { range: 'multicast' }],
  ['http://[fec0::1]/', '', { range: 'deprecatedSiteLocal' }],
  ['http://[100::1]/', '', { range: 'discard' }],
  ['http://[::7f00:1]/', LOCAL_DEFAULT, { range: 'ipv4Compatible' }],
  ['http://[2001:db8::1]/', '', { range: 'reserved' }],
  // IPv6 forms of IPv4 addresses are judged by the IPv4 address
  ['http://[::ffff:127.0.0.1]/', '', { range: 'ipv4Mapped/loopback' }],
  ['http://[::ffff:127.0.0.1]/', LOCAL_DEFAULT, 'allowed'],
  ['http://[::ffff:10.0.0.1]/', '', { range: 'ipv4Mapped/private' }],
  ['http://[::ffff:169.254.169.254]/', '169.254.0.0/16', { range: 'metadata' }],
  ['http://[::ffff:169.254.169.254]/', '::/0', { range: 'metadata' }],
  ['http://[::ffff:0:a00:1]/', '', { range: 'rfc6145/private' }],
  ['http://[64:ff9b::a00:1]/', '', { range: 'rfc6052/private' }],
  ['http://[64:ff9b::5db8:d822]/', '', 'allowed'], // NAT64 of 93.184.216.34
  ['http://[64:ff9b:1::5db8:d822]/', '', { range: 'rfc6052' }], // RFC 8215 local-use NAT64
  ['http://[2002:c0a8:101::1]/', '', { range: '6to4/private' }],
  ['http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/', '', { range: 'teredo' }],
  // cloud metadata: refused even inside an allowed range, unless listed exactly
  ['http://169.254.169.254/latest/meta-data/', '', { range: 'metadata' }],
  ['http://169.254.169.254/latest/meta-data/', '169.254.0.0/16', { range: 'metadata' }],
  ['http://169.254.169.254/', '0.0.0.0/0', { range: 'metadata' }],
  ['http://169.254.169.254/', '169.254.169.254/32', 'allowed'],
  ['http://169.254.10.1/', '', { range: 'linkLocal' }],
  ['http://169.254.10.1/', '169.254.0.0/16', 'allowed'],
  ['http://100.100.100.200/', '100.64.0.0/10', { range: 'metadata' }],
  ['http://[fd00:ec2::254]/', 'fd00::/8', { range: 'metadata' }],
  ['http://[fd00:ec2::254]/', 'fd00:ec2::254/128', 'allowed'],
  // numeric IPv4 spellings are normalised by WHATWG URL, then checked
  ['http://2130706433/', '', { range: 'loopback', message: /127\.0\.0\.1/ }],
  ['http://0x7f.1/', '', { range: 'loopback', message: /127\.0\.0\.1/ }],
  ['http://0177.0.0.1/', '', { range: 'loopback' }],
  ['http://0x7f000001/', '', { range: 'loopback' }],
  ['http://127.1/', '', { range: 'loopback' }],
  ['http://167772161/', '', { range: 'private' }], // 10.0.0.1
  ['http://0xa9.0xfe.0xa9.0xfe/', '169.254.0.0/16', { range: 'metadata' }],
  // names: every address they resolve to must pass
  ['http://localhost:3000/', '', { range: 'loopback', message: /localhost resolves to/ }],
  ['http://localhost:3000/', LOCAL_DEFAULT, 'allowed'],
  ['https://public.example/mcp', '', 'allowed'],
  ['http://mixed.example/', '', { range: 'private', message: /mixed\.example resolves to 10\.0\.0\.5/ }],
  ['http://rebind.example/', '169.254.0.0/16', { range: 'metadata' }],
  ['http://nx.example/', '', { message: /cannot resolve/ }],
  ['http://empty.example/', '', { message: /cannot resolve/ }],
  // schemes and credentials
  ['file:///etc/passwd', '', { message: /scheme file:/ }],
  ['gopher://public.example:70/_', '', { message: /scheme gopher:/ }],
  ['ftp://public.example/', '', { message: /scheme ftp:/ }],
  ['http://user:pass@public.example/', '', { message: /credentials/ }],
  ['https://token@93.184.216.34/', '', { message: /credentials/ }],
  ['not a url', '', { message: /not a valid URL/ }],
  // public addresses
  ['http://93.184.216.34/', '', 'allowed'],
  ['https://93.184.216.34:8443/v1', '', 'allowed'],
  ['wss://93.184.216.34/socket', '', 'allowed'],
  ['ws://[2606:2800:220:1:248:1893:25c8:1946]/', '', 'allowed'],
];

describe('UrlGuard', () => {
  it('has a table of at least 25 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });

  it.each(cases)('%s (allow %j)', async (url, allow, expected) => {
    const guard = new UrlGuard(allow, { lookup });
    if (expected === 'allowed') {
      await expect(guard.check(url)).resolves.toBeUndefined();
      return;
    }
    const err = await guard.check(url).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ZiggieError);
    const z = err as ZiggieError;
    expect(z.code).toBe('URL_NOT_ALLOWED');
    if (expected.range) {
      expect(z.extras.range).toBe(expected.range);
      expect(z.message).toContain(expected.range);
      expect(z.message).toContain(String(z.extras.address));
      expect(z.message).toContain(new URL(url).hostname);
    }
    if (expected.message) expect(z.message).toMatch(expected.message);
    expect(z.message).not.toContain('pass@');
  });

  it('does not resolve names of refused schemes', async () => {
    const spy = jest.fn(lookup);
    await expect(new UrlGuard('', { lookup: spy }).check('gopher://public.example/')).rejects.toThrow(/scheme/);
    expect(spy).not.toHaveBeenCalled();
  });

  it('uses the system resolver by default (localhost)', async () => {
    await expect(new UrlGuard('').check('http://localhost/')).rejects.toMatchObject({ code: 'URL_NOT_ALLOWED', extras: { host: 'localhost' } });
    await expect(new UrlGuard(LOCAL_DEFAULT).check('http://localhost/')).resolves.toBeUndefined();
  });

  it('refuses an invalid allow list, naming every bad entry', () => {
    expect(() => new UrlGuard('10.0.0.0/8, 10.0.0.0/33,nonsense, 10/8,::1/129')).toThrow(
      'MCP_SSRF_ALLOW: invalid CIDR "10.0.0.0/33", "nonsense", "10/8", "::1/129"',
    );
    expect(() => new UrlGuard('0x7f.0.0.1/8')).toThrow(/0x7f\.0\.0\.1\/8/);
  });

  it('parses allow lists with spaces, empty entries and bare addresses', () => {
    const ranges = parseAllowList(' 127.0.0.0/8 , ,::1/128,169.254.169.254');
    expect(ranges.map((r) => [r.cidr, r.prefix])).toEqual([
      ['127.0.0.0/8', 8],
      ['::1/128', 128],
      ['169.254.169.254', 32],
    ]);
    expect(parseAllowList('')).toEqual([]);
    expect(checkResolvedAddress('169.254.169.254', ranges)).toEqual({ allowed: true, address: '169.254.169.254', range: 'metadata' });
  });
});

describe('checkResolvedAddress', () => {
  const allow = parseAllowList(LOCAL_DEFAULT);
  it.each([
    ['93.184.216.34', [], true, 'unicast'],
    ['8.8.8.8', [], true, 'unicast'],
    ['2606:4700:4700::1111', [], true, 'unicast'],
    ['127.0.0.1', [], false, 'loopback'],
    ['127.0.0.1', allow, true, 'loopback'],
    ['::1', allow, true, 'loopback'],
    ['::ffff:7f00:1', allow, true, 'ipv4Mapped/loopback'],
    ['[::1]', [], false, 'loopback'],
    ['169.254.169.254', allow, false, 'metadata'],
    ['fd00:ec2::254', [], false, 'metadata'],
    ['100.100.100.200', [], false, 'metadata'],
    ['fe80::1%eth0', [], false, 'linkLocal'],
    ['not-an-ip', [], false, 'invalid'],
  ] as const)('%s', (address, ranges, allowed, range) => {
    expect(checkResolvedAddress(address, ranges)).toMatchObject({ allowed, range });
  });
});
