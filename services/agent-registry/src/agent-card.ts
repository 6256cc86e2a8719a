import { ZiggieError } from '@ziggie/contracts';

/** The A2A protocol version the cards declare (AgentInterface.protocolVersion, A2A 1.0). */
export const A2A_PROTOCOL_VERSION = '1.0';
export const PROVIDER_ORGANIZATION = 'Ziggie Command Center';

/** What a card is built from. */
export interface CardSubject {
  id: string;
  name: string;
  level: number;
  role: string;
  workspace: string;
  capabilities: readonly string[];
  team: string | null;
}

const SKILLS: Record<string, { name: string; description: string; examples: string[] }> = {
  coordinate: { name: 'Coordination', description: 'Plans work into steps and delegates them to the agents below it.', examples: ['Split a feature into design, code and QA steps'] },
  design: { name: 'Design', description: 'Product, UX and system design.', examples: ['Draft the screens of a sign-up flow'] },
  art: { name: 'Art', description: 'Images and visual assets, through ComfyUI and the GPU pools.', examples: ['Render a sprite sheet for a character'] },
  code: { name: 'Code', description: 'Writes, changes and reviews code.', examples: ['Add an endpoint with its tests'] },
  qa: { name: 'Quality assurance', description: 'Tests, reviews and checks outputs against their quality gates.', examples: ['Check a build against its acceptance criteria'] },
  research: { name: 'Research', description: 'Finds, reads and summarises sources.', examples: ['Compare three libraries for a task'] },
  data: { name: 'Data', description: 'Prepares, transforms and analyses data.', examples: ['Aggregate last week’s metrics by workspace'] },
  ops: { name: 'Operations', description: 'Deployment, infrastructure and runbooks.', examples: ['Roll out a new version to the cluster'] },
  content: { name: 'Content', description: 'Writes and edits text content.', examples: ['Write release notes from a change list'] },
};

function skillOf(capability: string, agent: CardSubject): Record<string, unknown> {
  const known = SKILLS[capability];
  return {
    id: capability,
    name: known?.name ?? capability,
    description: known?.description ?? `Steps that need the ${capability} capability.`,
    tags: [capability, `L${agent.level}`, `workspace:${agent.workspace}`, agent.role],
    ...(known ? { examples: known.examples } : {}),
  };
}

/** The base URL without a trailing slash; only absolute http(s) URLs are accepted. */
function normalizeBase(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new ZiggieError('VALIDATION_FAILED', 'base_url must be an absolute http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ZiggieError('VALIDATION_FAILED', 'base_url must be an absolute http(s) URL');
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

/**
 * The agent's A2A AgentCard (A2A 1.0, ProtoJSON field names): identity, the HTTP+JSON
 * interface at `<base>/v1/agents/<id>`, the provider, capabilities (task events stream over
 * SSE; no push notifications), default media types, one skill per capability, and the
 * bearer-JWT security scheme the gateway enforces.
 */
export function buildAgentCard(agent: CardSubject, baseUrl: string, version: string): Record<string, unknown> {
  const base = normalizeBase(baseUrl);
  const team = agent.team ? ` (${agent.team} team)` : '';
  return {
    name: agent.name,
    description: `L${agent.level} ${agent.role} agent${team} of workspace ${agent.workspace} in the Ziggie Command Center; capabilities: ${agent.capabilities.join(', ')}.`,
    supportedInterfaces: [{ url: `${base}/v1/agents/${encodeURIComponent(agent.id)}`, protocolBinding: 'HTTP+JSON', protocolVersion: A2A_PROTOCOL_VERSION }],
    provider: { organization: PROVIDER_ORGANIZATION, url: base },
    version,
    capabilities: { streaming: true, pushNotifications: false, extendedAgentCard: false },
    securitySchemes: {
      bearer: {
        httpAuthSecurityScheme: {
          scheme: 'Bearer',
          bearerFormat: 'JWT',
          description: 'A Ziggie Command Center token; it reaches only the agents of its workspaces.',
        },
      },
    },
    securityRequirements: [{ schemes: { bearer: { list: [] } } }],
    defaultInputModes: ['application/json', 'text/plain'],
    defaultOutputModes: ['application/json', 'text/plain'],
    skills: [...new Set(agent.capabilities)].map((c) => skillOf(c, agent)),
  };
}
