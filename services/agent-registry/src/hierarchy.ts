import { CAPABILITY_DOMAINS, DEFAULT_WORKSPACES, DefaultWorkspace } from '@ziggie/contracts';

export interface AgentSeed {
  id: string;
  name: string;
  level: number;
  parentId: string | null;
  role: string;
  workspace: string;
  capabilities: string[];
  team: string | null;
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

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * The default hierarchy (DESIGN.md §5), generated: L0 coordinator 1 → L1 specialists 22 by
 * workspace → L2 176 (8 per L1, one per capability domain) → L3 1,408 (8 per L2, same
 * domain), plus 15 elite specialists and the 3-agent BMAD team: 1,625 agents.
 */
export function generateDefaultHierarchy(workspaces: readonly DefaultWorkspace[] = DEFAULT_WORKSPACES): AgentSeed[] {
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
  for (const ws of workspaces) {
    for (let i = 1; i <= ws.l1Specialists; i++) {
      const primary = CAPABILITY_DOMAINS[(i - 1) % CAPABILITY_DOMAINS.length]!;
      const l1Id = `l1-${ws.id}-${pad(i)}`;
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
      for (let j = 1; j <= L2_PER_L1; j++) {
        const domain = CAPABILITY_DOMAINS[(j - 1) % CAPABILITY_DOMAINS.length]!;
        const l2Id = `l2-${ws.id}-${pad(i)}-${pad(j)}`;
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
        for (let k = 1; k <= L3_PER_L2; k++) {
          agents.push({
            id: `l3-${ws.id}-${pad(i)}-${pad(j)}-${pad(k)}`,
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
  for (const t of ELITE_TEAMS) {
    for (let i = 1; i <= t.size; i++) {
      agents.push({
        id: `elite-${t.team}-${pad(i)}`,
        name: `Elite ${t.team} specialist ${i}`,
        level: 1,
        parentId: 'l0-coordinator',
        role: `elite-${t.team}`,
        workspace: coordinatorWorkspace,
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
      workspace: coordinatorWorkspace,
      capabilities: role === 'bmad-qa' ? ['qa', 'code'] : ['code', 'design'],
      team: 'bmad',
    });
  }
  return agents;
}
