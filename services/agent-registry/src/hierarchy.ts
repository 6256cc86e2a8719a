import { CAPABILITY_DOMAINS, DEFAULT_WORKSPACES, DefaultWorkspace } from '@ziggie/contracts';
import type { AgentRecord } from './agent-index';

/** A generated agent: the same fields the index keeps. */
export type AgentSeed = AgentRecord;

/** The shape of a generated hierarchy; every field defaults to the default seed's. */
export interface HierarchyShape {
  /** Workspaces, each with its number of L1 specialists. */
  workspaces?: readonly DefaultWorkspace[];
  /** Multiplies every workspace's L1 count (more L1 per workspace, same shape below). */
  l1Scale?: number;
  l2PerL1?: number;
  l3PerL2?: number;
  /** The 15 elite specialists and the 3-agent BMAD team. */
  teams?: boolean;
}

const L2_PER_L1 = 8;
const L3_PER_L2 = 8;

/** Elite specialists by team (15), and the BMAD team (3); they belong to the coordinator's workspace. */
const ELITE_TEAMS: ReadonlyArray<{ team: string; size: number; capabilities: string[] }> = [
  { team: 'art', size: 4, capabilities: ['art', 'design'] },
  { team: 'design', size: 4, capabilities: ['design', 'content'] },
  { team: 'technical', size: 4, capabilities: ['code', 'ops', 'data'] },
  { team: 'production', size: 3, capabilities: ['qa', 'research', 'content'] },
];
const BMAD_ROLES = ['bmad-backend', 'bmad-frontend', 'bmad-qa'] as const;
const TEAM_SIZE = ELITE_TEAMS.reduce((n, t) => n + t.size, 0) + BMAD_ROLES.length;

/** Zero-padded to at least two digits, wider when the count needs it (so ids sort in order). */
const pad = (n: number, count = 0) => String(n).padStart(Math.max(2, String(count).length), '0');

/**
 * Generates a hierarchy (DESIGN.md §5): the L0 coordinator → L1 specialists by workspace →
 * `l2PerL1` L2 per L1 (one per capability domain in turn) → `l3PerL2` L3 per L2 (same domain),
 * plus the elite specialists and the BMAD team. Parents always come before their children.
 */
export function generateHierarchy(shape: HierarchyShape = {}): AgentSeed[] {
  const workspaces = shape.workspaces ?? DEFAULT_WORKSPACES;
  const l1Scale = shape.l1Scale ?? 1;
  const l2PerL1 = shape.l2PerL1 ?? L2_PER_L1;
  const l3PerL2 = shape.l3PerL2 ?? L3_PER_L2;
  const agents: AgentSeed[] = [];
  const coordinatorWorkspace = workspaces[0]?.id ?? 'ziggie';
  agents.push({
    id: 'l0-coordinator',
    name: 'Ziggie (L0 coordinator)',
    level: 0,
    parentId: null,
    role: 'coordinator',
    workspace: coordinatorWorkspace,
    capabilities: ['coordinate'],
    team: null,
  });
  if (shape.teams ?? true) agents.push(...teams(coordinatorWorkspace));
  for (const ws of workspaces) {
    const l1Count = ws.l1Specialists * l1Scale;
    for (let i = 1; i <= l1Count; i++) {
      const primary = CAPABILITY_DOMAINS[(i - 1) % CAPABILITY_DOMAINS.length]!;
      const l1Id = `l1-${ws.id}-${pad(i, l1Count)}`;
      agents.push({
        id: l1Id,
        name: `${ws.name} ${primary} lead ${i}`,
        level: 1,
        parentId: 'l0-coordinator',
        role: `${primary}-lead`,
        workspace: ws.id,
        capabilities: ['coordinate', primary],
        team: null,
      });
      for (let j = 1; j <= l2PerL1; j++) {
        const domain = CAPABILITY_DOMAINS[(j - 1) % CAPABILITY_DOMAINS.length]!;
        const l2Id = `l2-${ws.id}-${pad(i, l1Count)}-${pad(j, l2PerL1)}`;
        agents.push({
          id: l2Id,
          name: `${ws.name} ${domain} specialist ${i}.${j}`,
          level: 2,
          parentId: l1Id,
          role: `${domain}-specialist`,
          workspace: ws.id,
          capabilities: [domain],
          team: null,
        });
        for (let k = 1; k <= l3PerL2; k++) {
          agents.push({
            id: `l3-${ws.id}-${pad(i, l1Count)}-${pad(j, l2PerL1)}-${pad(k, l3PerL2)}`,
            name: `${ws.name} ${domain} micro-agent ${i}.${j}.${k}`,
            level: 3,
            parentId: l2Id,
            role: `${domain}-micro`,
            workspace: ws.id,
            capabilities: [domain],
            team: null,
          });
        }
      }
    }
  }
  return agents;
}

function teams(workspace: string): AgentSeed[] {
  const agents: AgentSeed[] = [];
  for (const t of ELITE_TEAMS) {
    for (let i = 1; i <= t.size; i++) {
      agents.push({
        id: `elite-${t.team}-${pad(i)}`,
        name: `Elite ${t.team} specialist ${i}`,
        level: 1,
        parentId: 'l0-coordinator',
        role: `elite-${t.team}`,
        workspace,
        capabilities: t.capabilities,
        team: `elite-${t.team}`,
      });
    }
  }
  for (const role of BMAD_ROLES) {
    agents.push({
      id: role,
      name: `BMAD ${role.slice(5)}`,
      level: 1,
      parentId: 'l0-coordinator',
      role,
      workspace,
      capabilities: role === 'bmad-qa' ? ['qa', 'code'] : ['code', 'design'],
      team: 'bmad',
    });
  }
  return agents;
}

/**
 * The default hierarchy (DESIGN.md §5): L0 coordinator 1 → L1 specialists 22 by workspace →
 * L2 176 (8 per L1) → L3 1,408 (8 per L2), plus 15 elite specialists and the 3-agent BMAD
 * team: 1,625 agents.
 */
export function generateDefaultHierarchy(workspaces: readonly DefaultWorkspace[] = DEFAULT_WORKSPACES): AgentSeed[] {
  return generateHierarchy({ workspaces });
}

/** `count` more workspaces (`ws-0001`, …) for fleets larger than the default five. */
export function syntheticWorkspaces(count: number, l1Specialists = 4): DefaultWorkspace[] {
  return Array.from({ length: count }, (_, i) => {
    const id = `ws-${pad(i + 1, Math.max(count, 1000))}`;
    return { id, name: `Workspace ${i + 1}`, priority: 'P2', owner: id, l1Specialists, dependsOn: [] };
  });
}

/**
 * Exactly `total` agents in the given shape: every workspace's L1 count scaled up until there
 * are enough, then the agents generated last (the tail of the last L1's subtree) left out.
 */
export function generateHierarchyOfSize(total: number, shape: Omit<HierarchyShape, 'l1Scale'> = {}): AgentSeed[] {
  const fixed = 1 + (shape.teams ?? true ? TEAM_SIZE : 0);
  if (!Number.isInteger(total) || total < fixed) throw new RangeError(`a hierarchy of this shape has at least ${fixed} agents`);
  const l1Base = (shape.workspaces ?? DEFAULT_WORKSPACES).reduce((n, w) => n + w.l1Specialists, 0);
  const l2PerL1 = shape.l2PerL1 ?? L2_PER_L1;
  const perL1 = 1 + l2PerL1 + l2PerL1 * (shape.l3PerL2 ?? L3_PER_L2);
  if (l1Base === 0 && total > fixed) throw new RangeError('no workspace has L1 specialists');
  const l1Scale = total === fixed ? 0 : Math.ceil((total - fixed) / (l1Base * perL1));
  return generateHierarchy({ ...shape, l1Scale }).slice(0, total);
}
