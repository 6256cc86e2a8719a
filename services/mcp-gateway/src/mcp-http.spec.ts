import { HttpException } from '@nestjs/common';
import { ZiggieError } from '@ziggie/contracts';
import { BodyRefusedError } from '@ziggie/platform';
import type { McpExtra } from './config';
import { bodyRefusal, isJsonContentType, isLoopbackBind, isLoopbackOrigin, type McpHttpRequest, OriginPolicy, ResourceMetadata, RpcCode } from './mcp-http';
import { plainMessage } from './providers/mcp-upstream';
import { SessionEventStore } from './event-store';

const extra = (over: Partial<McpExtra> = {}): McpExtra =>
  ({ MCP_ALLOWED_ORIGINS: '', MCP_ALLOW_LOOPBACK_ORIGINS: 'auto', MCP_OAUTH_SCOPES: '', MCP_PUBLIC_URL: undefined, MCP_AUTHORIZATION_SERVERS: undefined, ...over }) as McpExtra;
const request = (host: string, protocol: 'http' | 'https' = 'http'): McpHttpRequest => ({ headers: { host }, protocol }) as McpHttpRequest;

describe('/mcp origins', () => {
  it.each([
    ['http://localhost:5173', true],
    ['http://127.0.0.1:8080', true],
    ['http://[::1]:3000', true],
    ['https://localhost', true],
    ['http://localhost.evil.example', false],
    ['http://127.0.0.2:80', false],
    ['http://localhost:5173/path', false],
    ['null', false],
    ['file://', false],
  ])('isLoopbackOrigin(%s) → %s', (origin, loopback) => expect(isLoopbackOrigin(origin)).toBe(loopback));

  it('allows loopback origins only when bound to loopback (auto), or when forced', () => {
    expect(isLoopbackBind('127.0.0.1')).toBe(true);
    expect(isLoopbackBind('0.0.0.0')).toBe(false);
    expect(new OriginPolicy(extra(), '127.0.0.1').allows('http://localhost:1')).toBe(true);
    expect(new OriginPolicy(extra(), '0.0.0.0').allows('http://localhost:1')).toBe(false);
    expect(new OriginPolicy(extra({ MCP_ALLOW_LOOPBACK_ORIGINS: 'false' }), '127.0.0.1').allows('http://localhost:1')).toBe(false);
    expect(new OriginPolicy(extra({ MCP_ALLOW_LOOPBACK_ORIGINS: 'true' }), '0.0.0.0').allows('http://localhost:1')).toBe(true);
    expect(new OriginPolicy(extra({ MCP_ALLOWED_ORIGINS: 'https://console.example, https://b.example' }), '0.0.0.0').allows('https://b.example')).toBe(true);
    expect(new OriginPolicy(extra(), '127.0.0.1').allows('https://evil.example')).toBe(false);
  });
});

describe('/mcp protected resource metadata', () => {
  it('takes the resource from MCP_PUBLIC_URL, else from the request, and the servers from the setting or an http(s) issuer', () => {
    const configured = new ResourceMetadata(extra({ MCP_PUBLIC_URL: 'https://mcp.example.com/tools/mcp', MCP_AUTHORIZATION_SERVERS: 'https://a.example, https://b.example', MCP_OAUTH_SCOPES: 'mcp:call tools' }), 'ziggie-local');
    const req = request('evil.example');
    expect(configured.document(req, false)).toEqual({
      resource: 'https://mcp.example.com/tools/mcp',
      authorization_servers: ['https://a.example', 'https://b.example'],
      bearer_methods_supported: ['header'],
      scopes_supported: ['mcp:call', 'tools'],
      resource_name: expect.any(String),
    });
    expect(configured.document(req, true).resource).toBe('https://mcp.example.com');
    expect(configured.metadataUrl(req)).toBe('https://mcp.example.com/.well-known/oauth-protected-resource/tools/mcp');

    const local = new ResourceMetadata(extra(), 'ziggie-local');
    expect(local.document(request('127.0.0.1:4100'), false)).toMatchObject({ resource: 'http://127.0.0.1:4100/mcp', authorization_servers: [] });
    expect(local.document(request('bad host"'), false).resource).toBe('http://localhost/mcp');
    expect(new ResourceMetadata(extra(), 'https://issuer.example/realms/z').authorizationServers).toEqual(['https://issuer.example/realms/z']);
  });

  it('challenges 401 (invalid_token only when a token came) and 403 insufficient_scope, and nothing else', () => {
    const m = new ResourceMetadata(extra({ MCP_OAUTH_SCOPES: 'mcp:call' }), 'ziggie-local');
    const req = request('127.0.0.1:4100');
    const meta = 'resource_metadata="http://127.0.0.1:4100/.well-known/oauth-protected-resource/mcp"';
    expect(m.challenge(req, 401, new ZiggieError('AUTH_MISSING_TOKEN', 'Authorization header is missing'))).toBe(`Bearer ${meta}, scope="mcp:call"`);
    expect(m.challenge(req, 401, new ZiggieError('AUTH_INVALID_TOKEN', 'bad "sig"'))).toBe(`Bearer error="invalid_token", error_description="bad \\"sig\\"", ${meta}, scope="mcp:call"`);
    expect(m.challenge(req, 403, new ZiggieError('AUTH_WORKSPACE_FORBIDDEN', 'this token holds no workspace'))).toMatch(/^Bearer error="insufficient_scope", error_description="this token holds no workspace", resource_metadata=/);
    expect(m.challenge(req, 403, new ZiggieError('POLICY_DENIED', 'no'))).toBeUndefined();
    expect(m.challenge(req, 404, new ZiggieError('MCP_SESSION_NOT_FOUND', 'gone'))).toBeUndefined();
  });
});

describe('/mcp errors', () => {
  it('maps refusals of the body to JSON-RPC', () => {
    expect(bodyRefusal(new BodyRefusedError('invalid-json', 'VALIDATION_FAILED', 'x'))).toMatchObject({ status: 400, rpcCode: RpcCode.ParseError });
    expect(bodyRefusal(new BodyRefusedError('not-an-object', 'VALIDATION_FAILED', 'x'))).toMatchObject({ status: 400, rpcCode: RpcCode.InvalidRequest });
    // Fastify's own refusals, by their codes.
    expect(bodyRefusal(Object.assign(new Error('too large'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }))).toMatchObject({ status: 413, data: { code: 'PAYLOAD_TOO_LARGE' } });
    expect(bodyRefusal(Object.assign(new Error('media type'), { code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 }))).toMatchObject({ status: 415, rpcCode: RpcCode.Server });
    // The same, as they reach a Nest exception filter.
    expect(bodyRefusal(new HttpException('Unsupported Media Type', 415))).toMatchObject({ status: 415, data: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
    expect(bodyRefusal(new HttpException('Payload Too Large', 413))).toMatchObject({ status: 413, data: { code: 'PAYLOAD_TOO_LARGE' } });
    expect(bodyRefusal(new Error('boom'))).toBeUndefined();
    expect(bodyRefusal(new ZiggieError('VALIDATION_FAILED', 'not a body refusal'))).toBeUndefined();
  });

  it('takes application/json with any parameters as JSON, and nothing else', () => {
    expect(['application/json', 'Application/JSON; charset=utf-8', ' application/json;charset=UTF-8'].map(isJsonContentType)).toEqual([true, true, true]);
    expect(['application/jsonx', 'text/json', 'application/x-www-form-urlencoded', undefined].map(isJsonContentType)).toEqual([false, false, false, false]);
  });

  it('strips every repetition of the SDK prefix', () => {
    expect(plainMessage(new Error('MCP error -32602: MCP error -32602: tool x not found'))).toBe('tool x not found');
    expect(plainMessage('plain')).toBe('plain');
  });
});

describe('SessionEventStore', () => {
  it('replays the events of one stream after an id, skipping priming events, and forgets the oldest beyond capacity', async () => {
    const store = new SessionEventStore(5);
    const priming = await store.storeEvent('a', {} as never);
    const m1 = { jsonrpc: '2.0' as const, method: 'notifications/message', params: { level: 'info', data: 1 } };
    await store.storeEvent('a', m1);
    await store.storeEvent('b', { ...m1, params: { level: 'info', data: 'other stream' } });
    const m2 = { ...m1, params: { level: 'info', data: 2 } };
    const id2 = await store.storeEvent('a', m2);
    const sent: unknown[] = [];
    expect(await store.replayEventsAfter(priming, { send: (_id, m) => Promise.resolve(void sent.push(m)) })).toBe('a');
    expect(sent).toEqual([m1, m2]);
    expect(await store.getStreamIdForEventId(id2)).toBe('a');
    for (let i = 0; i < 5; i++) await store.storeEvent('c', m1);
    expect(await store.getStreamIdForEventId(priming)).toBeUndefined();
    expect(await store.replayEventsAfter(priming, { send: () => Promise.resolve() })).toBe('');
  });

  it('drops the oldest events beyond its byte budget, keeping at least the newest', async () => {
    const store = new SessionEventStore(100, 200);
    const big = { jsonrpc: '2.0' as const, method: 'notifications/message', params: { level: 'info', data: 'x'.repeat(120) } };
    const first = await store.storeEvent('a', big);
    const second = await store.storeEvent('a', big);
    expect(await store.getStreamIdForEventId(first)).toBeUndefined();
    expect(await store.getStreamIdForEventId(second)).toBe('a');
  });
});
