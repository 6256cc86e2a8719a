import type { pb, ProblemView } from '@ziggie/contracts';

/** A policy as GET /v1/policies answers it: the budget is null when the policy has none. */
export type PolicyView = Omit<pb.Policy, 'budget'> & { budget: { maxSteps?: number; maxGpuSteps?: number } | null };

export const EFFECTS = ['deny', 'require_approval', 'allow'] as const;
export const MATCH_FIELDS = ['tools', 'capabilities', 'workspaces', 'roles', 'actions', 'pools'] as const;
type MatchField = (typeof MATCH_FIELDS)[number];

/** The policy form as typed: lists as comma-separated text, numbers as text (empty: none). */
export interface PolicyDraft {
  name: string;
  description: string;
  effect: string;
  priority: string;
  enabled: boolean;
  match: Record<MatchField, string>;
  maxSteps: string;
  maxGpuSteps: string;
}

export function emptyDraft(): PolicyDraft {
  return {
    name: '',
    description: '',
    effect: 'deny',
    priority: '100',
    enabled: true,
    match: { tools: '', capabilities: '', workspaces: '', roles: '', actions: '', pools: '' },
    maxSteps: '',
    maxGpuSteps: '',
  };
}

export function draftOf(p: PolicyView): PolicyDraft {
  const m = p.match;
  return {
    name: p.name,
    description: p.description,
    effect: p.effect,
    priority: String(p.priority),
    enabled: p.enabled,
    match: Object.fromEntries(MATCH_FIELDS.map((f) => [f, (m?.[f] ?? []).join(', ')])) as Record<MatchField, string>,
    maxSteps: p.budget?.maxSteps === undefined ? '' : String(p.budget.maxSteps),
    maxGpuSteps: p.budget?.maxGpuSteps === undefined ? '' : String(p.budget.maxGpuSteps),
  };
}

const list = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * A number as typed: digits become a number; anything else is sent as typed, so the API refuses
 * it with its own message beside the field (the console does not keep a second copy of the rules).
 */
const number = (text: string): unknown => (/^\s*-?\d+\s*$/.test(text) ? Number(text) : text.trim());

/** The body of POST /v1/policies and PUT /v1/policies/{id}. */
export function bodyOf(d: PolicyDraft): Record<string, unknown> {
  const budget: Record<string, unknown> = {};
  if (d.maxSteps.trim()) budget.maxSteps = number(d.maxSteps);
  if (d.maxGpuSteps.trim()) budget.maxGpuSteps = number(d.maxGpuSteps);
  return {
    name: d.name.trim(),
    description: d.description,
    effect: d.effect,
    priority: d.priority.trim() ? number(d.priority) : undefined,
    enabled: d.enabled,
    match: Object.fromEntries(MATCH_FIELDS.map((f) => [f, list(d.match[f])])),
    ...(Object.keys(budget).length > 0 ? { budget } : {}),
  };
}

/**
 * The API's field errors by the form field they belong to: `match.tools.0` → `match.tools`,
 * `budget.maxSteps` as it is; errors about the whole body under ''.
 */
export function errorsByField(problem: Pick<ProblemView, 'errors'> | null | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const e of problem?.errors ?? []) {
    const parts = e.path ? e.path.split('.') : [];
    const key = parts[0] === 'match' || parts[0] === 'budget' ? parts.slice(0, 2).join('.') : (parts[0] ?? '');
    (out[key] ??= []).push(e.message);
  }
  return out;
}
