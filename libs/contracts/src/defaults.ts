/**
 * The default seed of a fresh command center (DESIGN.md §5, §7): five workspaces and the
 * capability domains agents specialise in. Services generate their seed data from these.
 */
export interface DefaultWorkspace {
  id: string;
  name: string;
  priority: 'P0' | 'P1' | 'P2';
  owner: string;
  /** L1 specialists of the workspace. */
  l1Specialists: number;
  dependsOn: string[];
}

export const DEFAULT_WORKSPACES: readonly DefaultWorkspace[] = [
  { id: 'ziggie', name: 'Ziggie', priority: 'P0', owner: 'platform', l1Specialists: 8, dependsOn: [] },
  { id: 'fitflow', name: 'FitFlow', priority: 'P1', owner: 'fitflow', l1Specialists: 5, dependsOn: [] },
  { id: 'ai-game-dev', name: 'ai-game-dev-system', priority: 'P1', owner: 'games', l1Specialists: 4, dependsOn: ['ziggie'] },
  { id: 'simstudio', name: 'SimStudio', priority: 'P2', owner: 'sim', l1Specialists: 3, dependsOn: ['ziggie'] },
  { id: 'meowping-nft', name: 'MeowPing NFT', priority: 'P1', owner: 'meowping', l1Specialists: 2, dependsOn: ['ziggie', 'ai-game-dev'] },
];

/** Capability domains; every workspace has L2 and L3 agents for each. */
export const CAPABILITY_DOMAINS = ['design', 'art', 'code', 'qa', 'research', 'data', 'ops', 'content'] as const;
export type CapabilityDomain = (typeof CAPABILITY_DOMAINS)[number];
