import { bodyOf, draftOf, emptyDraft, errorsByField, type PolicyView } from './policy-form';

const policy: PolicyView = {
  id: 'pol_0123456789abcdef',
  name: 'no sums in fitflow',
  description: 'why not',
  effect: 'deny',
  match: { tools: ['everything.get-sum', 'comfyui.*'], capabilities: [], workspaces: ['fitflow'], roles: [], actions: [], pools: [] },
  budget: { maxSteps: 3 },
  priority: 10,
  enabled: false,
  createdBy: 'ada',
  createdAt: '2026-12-07T10:00:00.000Z',
  updatedAt: '2026-12-07T10:00:00.000Z',
};

describe('the policy form', () => {
  it('edits a policy as it was and sends it back unchanged', () => {
    const body = bodyOf(draftOf(policy));
    expect(body).toEqual({
      name: 'no sums in fitflow',
      description: 'why not',
      effect: 'deny',
      priority: 10,
      enabled: false,
      match: { tools: ['everything.get-sum', 'comfyui.*'], capabilities: [], workspaces: ['fitflow'], roles: [], actions: [], pools: [] },
      budget: { maxSteps: 3 },
    });
  });

  it('reads lists as comma-separated names and leaves out an empty budget', () => {
    const d = emptyDraft();
    d.name = '  gate GPU  ';
    d.match.pools = ' gpu, ,comfyui ';
    const body = bodyOf(d);
    expect(body.name).toBe('gate GPU');
    expect((body.match as Record<string, string[]>).pools).toEqual(['gpu', 'comfyui']);
    expect(body).not.toHaveProperty('budget');
  });

  it('sends a number it cannot read as typed, for the API to refuse beside the field', () => {
    const d = emptyDraft();
    d.priority = 'high';
    d.maxGpuSteps = '2';
    expect(bodyOf(d)).toMatchObject({ priority: 'high', budget: { maxGpuSteps: 2 } });
  });

  it('puts each field error of the API beside its field', () => {
    const byField = errorsByField({
      errors: [
        { path: 'name', message: 'Too small' },
        { path: 'match.tools.0', message: 'Too small' },
        { path: 'budget.maxSteps', message: 'Too big' },
        { path: '', message: 'Unrecognized key' },
      ],
    });
    expect(byField).toEqual({ name: ['Too small'], 'match.tools': ['Too small'], 'budget.maxSteps': ['Too big'], '': ['Unrecognized key'] });
    expect(errorsByField(null)).toEqual({});
  });
});
