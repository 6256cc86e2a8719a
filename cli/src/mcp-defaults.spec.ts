import { HOST_REVEALING_TOOLS, hostRevealingPolicies, upgradePolicies } from './mcp-defaults';

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
