import { Plan, PlanSchema, ZiggieError } from '@ziggie/contracts';
import { computeWaves } from './plan';
import { checkPlan, NamedInPlan } from './plan-checks';

function check(steps: unknown[], depth = 0): NamedInPlan {
  const plan: Plan = PlanSchema.parse({ steps });
  const named: NamedInPlan = { capabilities: new Set(), agents: new Set(), workspaces: new Set() };
  checkPlan(plan, computeWaves(plan.steps), { depth, workspace: 'ziggie', where: '' }, named);
  return named;
}

function refusal(steps: unknown[], depth = 0): ZiggieError {
  try {
    check(steps, depth);
  } catch (err) {
    if (err instanceof ZiggieError) return err;
    throw err;
  }
  throw new Error('the plan was accepted');
}

const echo = (id: string, extra: Record<string, unknown> = {}) => ({ id, capability: 'qa', input: { tool: 'everything.echo', arguments: { message: id } }, ...extra });
const delegate = (id: string, steps: unknown[]) => ({ id, capability: 'code', action: 'delegate', input: { plan: { steps } } });

describe('checkPlan: what can be known at submission is checked at submission', () => {
  it('accepts well-formed steps of every action and collects what other services must confirm', () => {
    const named = check([
      echo('a'),
      { id: 'b', agent: 'l1-ziggie-01', workspace: 'fitflow', action: 'llm', input: { prompt: 'hi', temperature: 0.2 } },
      { id: 'c', capability: 'qa', action: 'approval', dependsOn: ['a'] },
      { id: 'd', capability: 'qa', dependsOn: ['a'], input: { tool: ['x.y', 'everything.echo'], arguments: '{{steps.a.output.structured}}' } },
      delegate('e', [echo('c1', { capability: 'code', workspace: 'nexus' })]),
    ]);
    expect([...named.capabilities].sort()).toEqual(['code', 'qa']);
    expect([...named.agents]).toEqual(['l1-ziggie-01']);
    expect([...named.workspaces].sort()).toEqual(['fitflow', 'nexus', 'ziggie']);
  });

  it('refuses a tool step whose tool is not a name, naming the field and the expected shape', () => {
    const err = refusal([{ id: 'a', capability: 'qa', input: { tool: 42 } }]);
    expect(err.code).toBe('TASK_INVALID_PLAN');
    expect(err.message).toMatch(/^step a: input\.tool: .*a tool step takes \{ tool: name/);
    expect(refusal([{ id: 'a', capability: 'qa' }]).message).toMatch(/input\.tool/);
    expect(refusal([{ id: 'a', capability: 'qa', input: { tool: 'x.y', arguments: [1] } }]).message).toMatch(/input\.arguments/);
    expect(refusal([{ id: 'a', capability: 'qa', input: { tool: 'x.y', argumnets: {} } }]).message).toMatch(/argumnets/);
  });

  it('refuses llm, delegate and approval inputs that cannot run', () => {
    expect(refusal([{ id: 'a', capability: 'qa', action: 'llm', input: {} }]).message).toMatch(/give prompt or messages/);
    expect(refusal([{ id: 'a', capability: 'qa', action: 'llm', input: { prompt: 'x', temperature: 'hot' } }]).message).toMatch(/input\.temperature/);
    expect(refusal([{ id: 'a', capability: 'qa', action: 'delegate', input: {} }]).message).toMatch(/input\.plan/);
    expect(refusal([{ id: 'a', capability: 'qa', action: 'approval', input: { message: 3 } }]).message).toMatch(/input\.message/);
  });

  it('refuses a quality gate output schema that does not compile', () => {
    const err = refusal([echo('a', { qualityGate: { outputSchema: { type: 'objekt' } } })]);
    expect(err.code).toBe('TASK_INVALID_PLAN');
    expect(err.message).toMatch(/step a: the quality gate's outputSchema does not compile/);
    expect(refusal([echo('a', { qualityGate: { outputSchema: { type: 'string', pattern: '(a)\\1' } } })]).message).toMatch(/does not compile/);
  });

  it('refuses references that walk the prototype chain', () => {
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      const err = refusal([echo('a'), { ...echo('b'), dependsOn: ['a'], input: { tool: 'everything.echo', arguments: { message: `{{steps.a.output.${key}.x}}` } } }]);
      expect(err.code).toBe('TASK_INVALID_PLAN');
      expect(err.message).toContain(`walks through ${key}`);
    }
  });

  it('refuses references to steps that do not run before', () => {
    expect(refusal([echo('a', { input: { tool: 'everything.echo', arguments: { message: '{{steps.b.output.text}}' } } }), echo('b')]).message).toMatch(/references the output of b/);
  });

  it('refuses delegation nested past the limit at the top, before any child exists', () => {
    const deep = delegate('l1', [delegate('l2', [delegate('l3', [delegate('l4', [echo('leaf')])])])]);
    const err = refusal([deep]);
    expect(err.code).toBe('TASK_DEPTH_EXCEEDED');
    expect(err.message).toBe("step l1's child plan: step l2's child plan: step l3's child plan: step l4 would delegate to depth 4; the limit is 3");
    expect(() => check([delegate('l1', [delegate('l2', [delegate('l3', [echo('leaf')])])])])).not.toThrow();
    expect(refusal([delegate('l3', [echo('leaf')])], 3).code).toBe('TASK_DEPTH_EXCEEDED');
  });

  it('checks child plans as plans (cycles, inputs) while their references belong to the parent', () => {
    const cyclic = delegate('d', [echo('x', { dependsOn: ['y'] }), echo('y', { dependsOn: ['x'] })]);
    const err = refusal([cyclic]);
    expect(err.code).toBe('TASK_CYCLE');
    expect(err.message).toMatch(/^step d's child plan: plan has a cycle/);
    expect(refusal([delegate('d', [{ id: 'x', capability: 'qa', input: { tool: 7 } }])]).message).toMatch(/^step d's child plan: step x: input\.tool/);
    // Resolved when the parent step is dispatched: a reference to the parent's earlier step.
    expect(() => check([echo('a'), { ...delegate('d', [echo('x', { input: { tool: 'everything.echo', arguments: { message: '{{steps.a.output.text}}' } } })]), dependsOn: ['a'] }])).not.toThrow();
  });
});
