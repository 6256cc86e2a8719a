import { evaluatePolicies, planBudgetViolation, PolicyRule, StepContext, toolsOf } from './governance';

const step = (over: Partial<StepContext> = {}): StepContext => ({
  capability: 'art',
  tools: ['comfyui.txt2img'],
  workspace: 'ziggie',
  roles: ['l1'],
  action: 'tool',
  pool: 'gpu',
  gpu: true,
  dispatchedSteps: 0,
  dispatchedGpuSteps: 0,
  ...over,
});

const rule = (over: Partial<PolicyRule> & Pick<PolicyRule, 'id' | 'effect'>): PolicyRule => ({
  name: over.id,
  budget: null,
  priority: 100,
  enabled: true,
  ...over,
  match: { capabilities: [], tools: [], workspaces: [], roles: [], actions: [], pools: [], ...(over.match ?? {}) },
});

describe('governance policies', () => {
  it('allows when nothing matches, and says so', () => {
    expect(evaluatePolicies([rule({ id: 'p', effect: 'deny', match: { capabilities: ['code'] } as PolicyRule['match'] })], step())).toEqual({ effect: 'allow', reason: 'no policy matched' });
  });

  it('matches tools by glob and decides by the first policy in priority order', () => {
    const rules = [
      rule({ id: 'late-allow', effect: 'allow', priority: 50, match: { tools: ['comfyui.*'] } as PolicyRule['match'] }),
      rule({ id: 'early-deny', effect: 'deny', priority: 10, match: { tools: ['comfyui.*'], workspaces: ['ziggie'] } as PolicyRule['match'] }),
    ];
    const d = evaluatePolicies(rules, step());
    expect(d.effect).toBe('deny');
    expect(d.policy?.id).toBe('early-deny');
    expect(d.reason).toContain('tools comfyui.*');
    expect(evaluatePolicies(rules, step({ workspace: 'fitflow' })).policy?.id).toBe('late-allow');
  });

  it('skips disabled policies and matches any of the roles', () => {
    const rules = [
      rule({ id: 'off', effect: 'deny', enabled: false }),
      rule({ id: 'bmad-approval', effect: 'require_approval', match: { roles: ['bmad', 'l1'] } as PolicyRule['match'] }),
    ];
    expect(evaluatePolicies(rules, step()).effect).toBe('require_approval');
    expect(evaluatePolicies(rules, step({ roles: ['admin'] })).effect).toBe('allow');
  });

  it('applies a budget only to the steps past it', () => {
    const rules = [rule({ id: 'gpu-budget', effect: 'deny', budget: { maxGpuSteps: 2 } })];
    expect(evaluatePolicies(rules, step({ dispatchedGpuSteps: 1 })).effect).toBe('allow');
    const past = evaluatePolicies(rules, step({ dispatchedGpuSteps: 2 }));
    expect(past.effect).toBe('deny');
    expect(past.reason).toContain('budget 2');
    expect(evaluatePolicies(rules, step({ gpu: false, dispatchedGpuSteps: 5 })).effect).toBe('allow');
  });

  it('refuses at submission a plan that already exceeds a deny budget', () => {
    const rules = [rule({ id: 'max-3', effect: 'deny', budget: { maxSteps: 3 }, match: { capabilities: ['art'] } as PolicyRule['match'] })];
    const steps = (n: number, capability = 'art') => Array.from({ length: n }, () => ({ ...step({ capability }) }));
    expect(planBudgetViolation(rules, steps(3))).toBeUndefined();
    expect(planBudgetViolation(rules, steps(4))).toMatch(/4 matching steps, the budget is 3/);
    expect(planBudgetViolation(rules, steps(9, 'code'))).toBeUndefined();
  });

  it('reads tool candidates from a tool step input', () => {
    expect(toolsOf('tool', { tool: 'a.b' })).toEqual(['a.b']);
    expect(toolsOf('tool', { tool: ['a.b', 3, 'c.d'] })).toEqual(['a.b', 'c.d']);
    expect(toolsOf('llm', { tool: 'a.b' })).toEqual([]);
  });
});
