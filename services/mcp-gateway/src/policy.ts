import { globMatches } from '@ziggie/contracts';
import { z } from 'zod';

/**
 * Governance rules evaluated before every call (Think → Govern → Act): the first rule whose
 * tool pattern, role and workspace match decides; no match allows. `require_approval` refuses a
 * direct call: such tools run only as task steps behind an approval gate.
 */
export const PolicyRuleSchema = z
  .object({
    effect: z.enum(['allow', 'deny', 'require_approval']),
    /** Namespaced tool names; `*` matches any run of characters (e.g. `comfyui.*`). */
    tools: z.array(z.string().min(1)).min(1),
    roles: z.array(z.string().min(1)).optional(),
    workspaces: z.array(z.string().min(1)).optional(),
    reason: z.string().max(200).optional(),
  })
  .strict();
export type PolicyRule = z.infer<typeof PolicyRuleSchema>;

export interface PolicyDecision {
  effect: PolicyRule['effect'];
  rule?: number;
  reason: string;
}

export class PolicySet {
  private readonly rules: PolicyRule[];

  constructor(rules: PolicyRule[]) {
    this.rules = rules;
  }

  evaluate(tool: string, roles: readonly string[], workspace: string): PolicyDecision {
    for (const [i, rule] of this.rules.entries()) {
      if (!rule.tools.some((glob) => globMatches(glob, tool))) continue;
      if (rule.roles && !rule.roles.some((r) => roles.includes(r))) continue;
      if (rule.workspaces && !rule.workspaces.includes(workspace)) continue;
      return { effect: rule.effect, rule: i, reason: rule.reason ?? `policy rule ${i} (${rule.effect})` };
    }
    return { effect: 'allow', reason: 'no rule matched' };
  }
}
