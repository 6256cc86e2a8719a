import { ZiggieError } from '@ziggie/contracts';
import { A2A_PROTOCOL_VERSION, buildAgentCard, CardSubject } from './agent-card';

const agent: CardSubject = {
  id: 'l3-fitflow-01-04-02',
  name: 'FitFlow qa micro-agent 1.4.2',
  level: 3,
  role: 'qa-micro',
  workspace: 'fitflow',
  capabilities: ['qa', 'code'],
  team: null,
};

describe('buildAgentCard (A2A AgentCard)', () => {
  const card = buildAgentCard(agent, 'https://ziggie.example.com/', '0.1.0');

  it('names and describes the agent, with the card version', () => {
    expect(card.name).toBe('FitFlow qa micro-agent 1.4.2');
    expect(card.description).toBe('L3 qa-micro agent of workspace fitflow in the Ziggie Command Center; capabilities: qa, code.');
    expect(card.version).toBe('0.1.0');
    expect(A2A_PROTOCOL_VERSION).toBe('1.0');
  });

  it('points its interface at the agent route on the base URL, with the protocol version', () => {
    expect(card.supportedInterfaces).toEqual([{ url: 'https://ziggie.example.com/v1/agents/l3-fitflow-01-04-02', protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' }]);
    const behindPrefix = buildAgentCard(agent, 'http://127.0.0.1:4000/api//', '0.1.0');
    expect(behindPrefix.supportedInterfaces).toEqual([expect.objectContaining({ url: 'http://127.0.0.1:4000/api/v1/agents/l3-fitflow-01-04-02' })]);
    expect(behindPrefix.provider).toEqual({ organization: 'Ziggie Command Center', url: 'http://127.0.0.1:4000/api' });
  });

  it('declares the provider, capabilities and default media types', () => {
    expect(card.provider).toEqual({ organization: 'Ziggie Command Center', url: 'https://ziggie.example.com' });
    expect(card.capabilities).toEqual({ streaming: true, pushNotifications: false, extendedAgentCard: false });
    expect(card.defaultInputModes).toEqual(['application/json', 'text/plain']);
    expect(card.defaultOutputModes).toEqual(['application/json', 'text/plain']);
  });

  it('has one skill per capability, each with id, name, description and tags', () => {
    expect(card.skills).toEqual([
      expect.objectContaining({ id: 'qa', name: 'Quality assurance', tags: ['qa', 'L3', 'workspace:fitflow', 'qa-micro'] }),
      expect.objectContaining({ id: 'code', name: 'Code', tags: ['code', 'L3', 'workspace:fitflow', 'qa-micro'] }),
    ]);
    for (const skill of card.skills as Array<Record<string, unknown>>) expect(typeof skill.description).toBe('string');
    const custom = buildAgentCard({ ...agent, capabilities: ['translate', 'translate'], team: 'elite-art' }, 'https://z.example', '1.2.3');
    expect(custom.skills).toEqual([{ id: 'translate', name: 'translate', description: 'Steps that need the translate capability.', tags: ['translate', 'L3', 'workspace:fitflow', 'qa-micro'] }]);
    expect(custom.description).toContain('(elite-art team)');
  });

  it('requires a bearer JWT', () => {
    expect(card.securitySchemes).toEqual({ bearer: { httpAuthSecurityScheme: expect.objectContaining({ scheme: 'Bearer', bearerFormat: 'JWT' }) } });
    expect(card.securityRequirements).toEqual([{ schemes: { bearer: { list: [] } } }]);
  });

  it('escapes the id in the URL and survives a JSON round trip (it travels as a protobuf Struct)', () => {
    const odd = buildAgentCard({ ...agent, id: 'a b/c' }, 'https://z.example', '0.1.0');
    expect((odd.supportedInterfaces as Array<{ url: string }>)[0]!.url).toBe('https://z.example/v1/agents/a%20b%2Fc');
    expect(JSON.parse(JSON.stringify(card))).toEqual(card);
  });

  it.each(['', 'not a url', 'ftp://files.example.com', '/relative'])('refuses the base URL %p', (base) => {
    expect(() => buildAgentCard(agent, base, '0.1.0')).toThrow(ZiggieError);
  });
});
