import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HOST_REVEALING_TOOLS, hostRevealingPolicies, upgradePolicies } from './mcp-defaults';
import { defaultMcpServers, ensureMcpServersFile } from './stack';

/** The first rule whose tools and roles match decides; no match allows (services/mcp-gateway/src/policy.ts, for exact names). */
function decide(policies: ReturnType<typeof hostRevealingPolicies>, tool: string, roles: string[]): string {
  const rule = policies.find((p) => p.tools.includes(tool) && (!p.roles || p.roles.some((r) => roles.includes(r))));
  return rule?.effect ?? 'allow';
}

const bundled = [{ name: 'everything' }, { name: 'files' }];

describe('default MCP policies', () => {
  it('make everything.get-env and the URL fetcher admin-only, for any other or unknown role', () => {
    expect(HOST_REVEALING_TOOLS).toEqual(expect.arrayContaining(['everything.get-env', 'everything.gzip-file-as-resource']));
    const policies = hostRevealingPolicies();
    for (const tool of HOST_REVEALING_TOOLS) {
      expect([decide(policies, tool, ['admin']), decide(policies, tool, ['admin', 'l1'])]).toEqual(['allow', 'allow']);
      for (const roles of [['l1'], ['l2l3'], ['bmad'], ['some-future-role']]) expect(decide(policies, tool, roles)).toBe('deny');
    }
    expect(decide(policies, 'everything.echo', ['l1'])).toBe('allow');
    for (const rule of policies) expect((rule.reason ?? '').length).toBeLessThanOrEqual(200);
  });
});

describe('upgradePolicies', () => {
  it('puts the default rules first in a file written without them, keeping its own rules and keys', () => {
    const own = { effect: 'require_approval', tools: ['everything.*'], workspaces: ['ziggie'] };
    const { content, added } = upgradePolicies({ servers: bundled, policies: [own], extra: 1 });
    expect(added).toEqual([...HOST_REVEALING_TOOLS]);
    expect(content).toEqual({ servers: bundled, policies: [...hostRevealingPolicies(), own], extra: 1 });
  });

  it('adds them when the file has no policies at all', () => {
    expect(upgradePolicies({ servers: bundled }).content).toEqual({ servers: bundled, policies: hostRevealingPolicies() });
  });

  it('changes nothing once the rules are there, so it runs once', () => {
    const once = upgradePolicies({ servers: bundled }).content;
    expect(upgradePolicies(once)).toEqual({ added: [] });
  });

  it('leaves a tool alone that a rule of the operator names, whatever it decides', () => {
    const allowAll = { effect: 'allow', tools: ['everything.get-env'] };
    const { content, added } = upgradePolicies({ servers: bundled, policies: [allowAll] });
    expect(added).toEqual(['everything.gzip-file-as-resource']);
    expect(content?.policies).toEqual([...hostRevealingPolicies(['everything.gzip-file-as-resource']), allowAll]);
  });

  it('adds nothing for a server the file no longer lists', () => {
    expect(upgradePolicies({ servers: [{ name: 'files' }] })).toEqual({ added: [] });
  });

  it('leaves a file of another shape to mcp-gateway to report', () => {
    for (const file of [null, [], 'text', { servers: 'x' }, { servers: bundled, policies: {} }]) expect(upgradePolicies(file)).toEqual({ added: [] });
  });
});

describe('ensureMcpServersFile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ziggie-mcp-defaults-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const read = async (path: string) => JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;

  it('writes the bundled servers with the default policies on first start, without a notice', async () => {
    const path = join(dir, 'mcp-servers.json');
    await expect(ensureMcpServersFile(path, dir)).resolves.toEqual([]);
    const file = await read(path);
    expect(file.policies).toEqual(hostRevealingPolicies());
    expect(file).toEqual(defaultMcpServers(dir));
  });

  it('adds the policies once to a file an earlier version wrote, and says so', async () => {
    const path = join(dir, 'mcp-servers.json');
    const { policies: _policies, ...earlier } = defaultMcpServers(dir);
    await writeFile(path, JSON.stringify(earlier));
    const notices = await ensureMcpServersFile(path, dir);
    expect(notices).toEqual([expect.stringContaining('everything.get-env')]);
    expect(notices[0]).toContain(path);
    expect(await read(path)).toEqual({ ...earlier, policies: hostRevealingPolicies() });
    await expect(ensureMcpServersFile(path, dir)).resolves.toEqual([]);
  });

  it('leaves a file it cannot parse to mcp-gateway', async () => {
    const path = join(dir, 'mcp-servers.json');
    await writeFile(path, '{ not json');
    await expect(ensureMcpServersFile(path, dir)).resolves.toEqual([]);
    expect(await readFile(path, 'utf8')).toBe('{ not json');
  });
});
