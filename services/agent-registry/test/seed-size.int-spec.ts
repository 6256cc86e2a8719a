import { z } from 'zod';
import { pb } from '@ziggie/contracts';
import { callUnary } from '@ziggie/platform';
import { registryEnv } from '../src/config';
import { startRegistry, type RegistryUnderTest } from './registry-harness';

const SIZE = 5000;

describe('agent-registry seeded with ZIGGIE_SEED_AGENTS', () => {
  let under: RegistryUnderTest;
  let registry: pb.AgentRegistryClient;

  beforeAll(async () => {
    under = await startRegistry({ ZIGGIE_SEED_AGENTS: String(SIZE) });
    registry = under.registry;
  }, 60_000);

  afterAll(() => under?.stop());

  const count = async (req: Partial<pb.ListAgentsRequest> = {}): Promise<number> =>
    (
      await callUnary(registry.listAgents.bind(registry), {
        page: { limit: 1, cursor: '' },
        workspace: '',
        level: 0,
        capability: '',
        filterLevel: false,
        status: '',
        parentId: '',
        role: '',
        ...req,
      })
    ).total;

  it('holds exactly that many agents, the L1 specialists scaled up from the default 22', async () => {
    expect(await count()).toBe(SIZE);
    expect(await count({ filterLevel: true, level: 0 })).toBe(1);
    // 1 L0 + 18 elite and BMAD agents; each scaled L1 leads 8 L2 and 64 L3 (the last one cut short).
    const l1 = await count({ filterLevel: true, level: 1 });
    expect(l1 - 18).toBe(Math.ceil((SIZE - 19) / 73));
    const children = await callUnary(registry.listChildren.bind(registry), { id: 'l0-coordinator', page: { limit: 500, cursor: '' } });
    expect(children.total).toBe(l1);
  });

  it('refuses a size smaller than the fixed agents or larger than a million', () => {
    const env = z.object(registryEnv);
    expect(env.parse({}).ZIGGIE_SEED_AGENTS).toBe(1625);
    expect(env.safeParse({ ZIGGIE_SEED_AGENTS: '18' }).success).toBe(false);
    expect(env.safeParse({ ZIGGIE_SEED_AGENTS: '1000001' }).success).toBe(false);
    expect(env.safeParse({ ZIGGIE_SEED_AGENTS: 'many' }).success).toBe(false);
  });
});
