import * as grpc from '@grpc/grpc-js';
import { Logger } from '@nestjs/common';
import { GRPC_ERROR_CODE_KEY, pb, ZiggieError } from '@ziggie/contracts';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  callStream,
  callUnary,
  createGrpcClient,
  currentCorrelationId,
  GrpcBinding,
  runWithContext,
  serverStream,
  startGrpcServer,
  stopGrpcServer,
  TlsFiles,
  unary,
} from '../src';

const HOST = '127.0.0.1';

/** What a test expects a promise to reject with: the ZiggieError the client saw. */
async function rejectionOf(p: Promise<unknown>): Promise<ZiggieError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ZiggieError);
    return err as ZiggieError;
  }
  throw new Error('expected the call to fail');
}

const workspace = (id: string): pb.Workspace => ({
  id,
  name: `Workspace ${id}`,
  priority: 'P1',
  owner: 'ops',
  health: 'on-track',
  healthReasons: [],
  dependsOn: ['base'],
  portRange: { start: 20000, end: 20099 },
  description: '',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
});

const notImplemented = () => unary(() => Promise.reject(new ZiggieError('UNIMPLEMENTED', 'not in this test')));

/** Resolved at the end of the run so the "never answers" handler lets go of its call. */
let releaseHangingCalls: () => void = () => undefined;
const hanging = new Promise<void>((resolve) => (releaseHangingCalls = resolve));

/** What the handlers saw, for the correlation-id tests. */
const seenCorrelationIds: string[] = [];

/** A tiny WorkspaceCoord: `x` is missing, `boom` fails unexpectedly, `slow` never answers in time. */
const workspaceCoord: pb.WorkspaceCoordServer = {
  ...(Object.fromEntries(Object.keys(pb.WorkspaceCoordService).map((method) => [method, notImplemented()])) as unknown as pb.WorkspaceCoordServer),
  getWorkspace: unary(async (req: pb.GetWorkspaceRequest) => {
    seenCorrelationIds.push(currentCorrelationId() ?? '(none)');
    if (req.id === 'boom') throw new Error('boom');
    if (req.id === 'slow') {
      await hanging;
      return workspace('slow');
    }
    if (req.id !== 'ziggie') throw new ZiggieError('NOT_FOUND', `workspace ${req.id} not found`, { workspace: req.id });
    return workspace(req.id);
  }),
  listWorkspaces: unary(() => ({ items: [workspace('ziggie')], total: 1, nextCursor: '' })),
};

const progress = (n: number): pb.CallToolEvent => ({ event: { $case: 'progress', value: { progress: n, total: 2, message: `step ${n}` } } });

/** A tiny McpGateway whose CallTool streams two progress events, then fails or succeeds by tool name. */
const mcpGateway: pb.McpGatewayServer = {
  listTools: notImplemented(),
  listServers: notImplemented(),
  addServer: notImplemented(),
  removeServer: notImplemented(),
  listPins: notImplemented(),
  approvePin: notImplemented(),
  listGpuPools: notImplemented(),
  getGpuPool: notImplemented(),
  scaleGpuPool: notImplemented(),
  listResources: notImplemented(),
  readResource: notImplemented(),
  listPrompts: notImplemented(),
  getPrompt: notImplemented(),
  getToolStats: notImplemented(),
  callTool: serverStream(async (req: pb.CallToolRequest, call: grpc.ServerWritableStream<pb.CallToolRequest, pb.CallToolEvent>) => {
    call.write(progress(1));
    call.write(progress(2));
    // Let both events reach the wire before the stream ends with a status.
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (req.name === 'explode') throw new ZiggieError('TOOL_CALL_FAILED', 'tool explode failed', { tool: req.name });
    if (req.name === 'crash') throw new Error('crash with secrets');
    call.write({ event: { $case: 'result', value: { result: { ok: true }, isError: false } } });
  }),
};

const bindings: GrpcBinding[] = [
  { definition: pb.WorkspaceCoordService, implementation: workspaceCoord },
  { definition: pb.McpGatewayService, implementation: mcpGateway },
];

const toolCall = (name: string): pb.CallToolRequest => ({ name, arguments: {}, principal: undefined, workspace: 'ziggie', correlationId: '', timeoutMs: 0 });

/** Raw generated-client call, to look at the status and trailers the wrapper put on the wire. */
function rawGetWorkspace(client: pb.WorkspaceCoordClient, id: string): Promise<grpc.ServiceError> {
  return new Promise((resolve, reject) => {
    client.getWorkspace({ id }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err) => (err ? resolve(err) : reject(new Error('expected an error'))));
  });
}

describe('platform gRPC wrapper against a real grpc-js server (insecure)', () => {
  let server: grpc.Server;
  let port: number;
  let coord: pb.WorkspaceCoordClient;
  let mcp: pb.McpGatewayClient;
  let loggedError: jest.SpyInstance;

  beforeAll(async () => {
    // Unexpected handler errors are logged with their stack on the server; keep the test output clean but check it.
    loggedError = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    ({ server, port } = await startGrpcServer({ host: HOST, port: 0 }, bindings));
    coord = createGrpcClient(pb.WorkspaceCoordClient, `${HOST}:${port}`);
    mcp = createGrpcClient(pb.McpGatewayClient, `${HOST}:${port}`);
  });

  afterAll(async () => {
    releaseHangingCalls();
    coord?.close();
    mcp?.close();
    if (server) await stopGrpcServer(server, 2000);
    loggedError?.mockRestore();
  });

  beforeEach(() => {
    seenCorrelationIds.length = 0;
    loggedError.mockClear();
  });

  it('binds an ephemeral port when asked for port 0', () => {
    expect(port).toBeGreaterThan(0);
  });

  it('answers a unary call through the generated WorkspaceCoord definition', async () => {
    const ws = await callUnary(coord.getWorkspace.bind(coord), { id: 'ziggie' }, { peer: 'workspace-coord' });
    expect(ws).toEqual(workspace('ziggie'));
    const list = await callUnary(coord.listWorkspaces.bind(coord), { page: { limit: 10, cursor: '' }, ids: [], health: '' });
    expect(list).toEqual({ items: [workspace('ziggie')], total: 1, nextCursor: '' });
  });

  it('carries a thrown ZiggieError to the client with its code, message and extras', async () => {
    const err = await rejectionOf(callUnary(coord.getWorkspace.bind(coord), { id: 'x' }, { peer: 'workspace-coord' }));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toBe('workspace x not found');
    expect(err.extras).toEqual({ workspace: 'x' });
    expect(loggedError).not.toHaveBeenCalled();

    // On the wire: the mapped gRPC status plus the stable code and extras in the trailers.
    const raw = await rawGetWorkspace(coord, 'x');
    expect(raw.code).toBe(grpc.status.NOT_FOUND);
    expect(raw.details).toBe('workspace x not found');
    expect(raw.metadata.get(GRPC_ERROR_CODE_KEY)).toEqual(['NOT_FOUND']);
    const extras = raw.metadata.get('ziggie-error-extras-bin')[0];
    expect(Buffer.isBuffer(extras) && JSON.parse(extras.toString('utf8'))).toEqual({ workspace: 'x' });
  });

  it('turns an unexpected error into a safe INTERNAL: no message, no stack leaves the server', async () => {
    const err = await rejectionOf(callUnary(coord.getWorkspace.bind(coord), { id: 'boom' }, { peer: 'workspace-coord' }));
    expect(err.code).toBe('INTERNAL');
    expect(err.message).toBe('internal error');
    expect(err.extras).toEqual({});

    const raw = await rawGetWorkspace(coord, 'boom');
    expect(raw.code).toBe(grpc.status.INTERNAL);
    expect(raw.details).toBe('internal error');
    expect(raw.details).not.toContain('boom');
    expect(raw.details).not.toMatch(/\n\s+at /);
    expect(raw.metadata.get(GRPC_ERROR_CODE_KEY)).toEqual(['INTERNAL']);
    expect(raw.metadata.get('ziggie-error-extras-bin')).toEqual([]);
    for (const [, values] of Object.entries(raw.metadata.getMap())) {
      expect(String(values)).not.toContain('boom');
    }
    // The real error is logged on the server side instead.
    expect(loggedError).toHaveBeenCalledWith(expect.objectContaining({ err: expect.objectContaining({ message: 'boom' }) }), 'unexpected error in gRPC handler');
  });

  it('propagates the caller correlation id to the handler context', async () => {
    await runWithContext({ correlationId: 'corr-9' }, () => callUnary(coord.getWorkspace.bind(coord), { id: 'ziggie' }));
    expect(seenCorrelationIds).toEqual(['corr-9']);
  });

  it('gives the handler a fresh correlation id when the caller has none (or an unsafe one)', async () => {
    await callUnary(coord.getWorkspace.bind(coord), { id: 'ziggie' });
    // Legal in gRPC metadata, but not a sane correlation id: the server replaces it.
    await runWithContext({ correlationId: 'bad id with spaces' }, () => callUnary(coord.getWorkspace.bind(coord), { id: 'ziggie' }));
    expect(seenCorrelationIds).toHaveLength(2);
    for (const id of seenCorrelationIds) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it('streams events and then ends normally', async () => {
    const events: pb.CallToolEvent[] = [];
    for await (const e of callStream(mcp.callTool.bind(mcp), toolCall('ok'), { peer: 'mcp-gateway' })) events.push(e);
    expect(events).toEqual([progress(1), progress(2), { event: { $case: 'result', value: { result: { ok: true }, isError: false } } }]);
  });

  it('yields the events written before a ZiggieError, then rejects with its code, message and extras', async () => {
    const events: pb.CallToolEvent[] = [];
    let failure: unknown;
    try {
      for await (const e of callStream(mcp.callTool.bind(mcp), toolCall('explode'), { peer: 'mcp-gateway' })) events.push(e);
    } catch (err) {
      failure = err;
    }
    expect(events).toEqual([progress(1), progress(2)]);
    expect(failure).toBeInstanceOf(ZiggieError);
    const err = failure as ZiggieError;
    expect(err.code).toBe('TOOL_CALL_FAILED');
    expect(err.message).toBe('tool explode failed');
    expect(err.extras).toEqual({ tool: 'explode' });
  });

  it('ends a stream whose handler fails unexpectedly with a safe INTERNAL', async () => {
    const events: pb.CallToolEvent[] = [];
    const err = await rejectionOf(
      (async () => {
        for await (const e of callStream(mcp.callTool.bind(mcp), toolCall('crash'), { peer: 'mcp-gateway' })) events.push(e);
      })(),
    );
    expect(events).toHaveLength(2);
    expect(err.code).toBe('INTERNAL');
    expect(err.message).toBe('internal error');
    expect(err.message).not.toContain('secrets');
  });

  describe('server streams the caller stops reading', () => {
    let cancelled: Promise<void>;
    let server2: { server: grpc.Server; port: number };
    let client2: pb.McpGatewayClient;

    beforeEach(async () => {
      let onCancelled: () => void = () => undefined;
      cancelled = new Promise<void>((resolve) => (onCancelled = resolve));
      // Writes a progress event every 10 ms until the client goes away (or 5 s pass).
      const endless = serverStream<pb.CallToolRequest, pb.CallToolEvent>(async (_req, call) => {
        call.on('cancelled', onCancelled);
        for (let n = 1; n <= 500 && !call.cancelled; n++) {
          call.write(progress(n));
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      });
      server2 = await startGrpcServer({ host: HOST, port: 0 }, [{ definition: pb.McpGatewayService, implementation: { ...mcpGateway, callTool: endless } }]);
      client2 = createGrpcClient(pb.McpGatewayClient, `${HOST}:${server2.port}`);
    });

    afterEach(async () => {
      client2?.close();
      if (server2) await stopGrpcServer(server2.server, 1000);
    });

    const within = (p: Promise<void>, ms: number) =>
      Promise.race([p.then(() => 'cancelled'), new Promise<string>((resolve) => setTimeout(() => resolve('still running'), ms))]);

    it('cancels the call on the server when the AbortSignal fires', async () => {
      const abort = new AbortController();
      const events: pb.CallToolEvent[] = [];
      const err = await rejectionOf(
        (async () => {
          for await (const e of callStream(client2.callTool.bind(client2), toolCall('endless'), { signal: abort.signal, timeoutMs: 10_000 })) {
            events.push(e);
            if (events.length === 2) abort.abort();
          }
        })(),
      );
      expect(events.length).toBeGreaterThanOrEqual(2);
      expect(err.message).toMatch(/cancelled/i);
      await expect(within(cancelled, 2000)).resolves.toBe('cancelled');
    });

    it('cancels the call on the server when the consumer breaks out of the loop early', async () => {
      const events: pb.CallToolEvent[] = [];
      for await (const e of callStream(client2.callTool.bind(client2), toolCall('endless'), { timeoutMs: 10_000 })) {
        events.push(e);
        if (events.length === 2) break;
      }
      expect(events).toEqual([progress(1), progress(2)]);
      // Otherwise the server keeps streaming into a call nobody reads until the deadline (60 s by default).
      await expect(within(cancelled, 2000)).resolves.toBe('cancelled');
    });
  });

  it('propagates the correlation id on server streams too', async () => {
    let seen: string | undefined;
    const probe = serverStream<pb.CallToolRequest, pb.CallToolEvent>(async (_req, call) => {
      seen = currentCorrelationId();
      call.write(progress(1));
    });
    const extra = await startGrpcServer({ host: HOST, port: 0 }, [{ definition: pb.McpGatewayService, implementation: { ...mcpGateway, callTool: probe } }]);
    const client = createGrpcClient(pb.McpGatewayClient, `${HOST}:${extra.port}`);
    try {
      const events: pb.CallToolEvent[] = [];
      await runWithContext({ correlationId: 'corr-stream' }, async () => {
        for await (const e of callStream(client.callTool.bind(client), toolCall('ok'))) events.push(e);
      });
      expect(events).toEqual([progress(1)]);
      expect(seen).toBe('corr-stream');
    } finally {
      client.close();
      await stopGrpcServer(extra.server, 1000);
    }
  });

  it('maps a missed deadline to UPSTREAM_TIMEOUT, naming the peer', async () => {
    const started = Date.now();
    const err = await rejectionOf(callUnary(coord.getWorkspace.bind(coord), { id: 'slow' }, { timeoutMs: 200, peer: 'workspace-coord' }));
    expect(err.code).toBe('UPSTREAM_TIMEOUT');
    expect(err.message).toMatch(/^workspace-coord: /);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('maps an unreachable peer to SERVICE_UNAVAILABLE', async () => {
    // A port that was just freed: nothing listens there.
    const gone = await startGrpcServer({ host: HOST, port: 0 }, bindings);
    await stopGrpcServer(gone.server, 1000);
    const client = createGrpcClient(pb.WorkspaceCoordClient, `${HOST}:${gone.port}`);
    try {
      const err = await rejectionOf(callUnary(client.getWorkspace.bind(client), { id: 'ziggie' }, { timeoutMs: 3000, peer: 'workspace-coord' }));
      expect(err.code).toBe('SERVICE_UNAVAILABLE');
      expect(err.message).toMatch(/^workspace-coord: /);
    } finally {
      client.close();
    }
  });
});

/** A throw-away PKI made with the openssl CLI: a CA, a server certificate for 127.0.0.1/localhost, a client certificate. */
interface Pki {
  dir: string;
  ca: string;
  server: { cert: string; key: string };
  client: { cert: string; key: string };
  rogue: { ca: string; clientCert: string; clientKey: string };
}

const OPENSSL_CNF = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'ziggie-grpc-tls-'));
  const cnf = join(dir, 'openssl.cnf');
  writeFileSync(cnf, OPENSSL_CNF);
  const p = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const key = (name: string) => openssl('genrsa', '-out', p(name), '2048');
  const ca = (name: string, cn: string) => {
    key(`${name}.key`);
    openssl('req', '-config', cnf, '-new', '-x509', '-key', p(`${name}.key`), '-subj', `/CN=${cn}`, '-days', '1', '-sha256', '-extensions', 'v3_ca', '-out', p(`${name}.crt`));
  };
  const leaf = (name: string, cn: string, caName: string, section: 'server' | 'client') => {
    key(`${name}.key`);
    openssl('req', '-config', cnf, '-new', '-key', p(`${name}.key`), '-subj', `/CN=${cn}`, '-out', p(`${name}.csr`));
    openssl(
      'x509', '-req', '-in', p(`${name}.csr`), '-CA', p(`${caName}.crt`), '-CAkey', p(`${caName}.key`), '-set_serial', String(Date.now()),
      '-days', '1', '-sha256', '-extfile', cnf, '-extensions', section, '-out', p(`${name}.crt`),
    );
  };
  ca('ca', 'ziggie test CA');
  leaf('server', 'localhost', 'ca', 'server');
  leaf('client', 'ziggie-test-client', 'ca', 'client');
  ca('rogue-ca', 'rogue CA');
  leaf('rogue-client', 'rogue-client', 'rogue-ca', 'client');
  // Sanity: the chain verifies with openssl itself, so a failure below is about the wrapper, not the PKI.
  openssl('verify', '-CAfile', p('ca.crt'), p('server.crt'), p('client.crt'));
  return {
    dir,
    ca: p('ca.crt'),
    server: { cert: p('server.crt'), key: p('server.key') },
    client: { cert: p('client.crt'), key: p('client.key') },
    rogue: { ca: p('rogue-ca.crt'), clientCert: p('rogue-client.crt'), clientKey: p('rogue-client.key') },
  };
}

describe('platform gRPC wrapper with TLS and mutual TLS', () => {
  let pki: Pki;
  const clients: grpc.Client[] = [];
  const servers: grpc.Server[] = [];

  /** A WorkspaceCoord client, closed after each test. */
  function client(address: string, tls?: TlsFiles): pb.WorkspaceCoordClient {
    const c = createGrpcClient(pb.WorkspaceCoordClient, address, tls);
    clients.push(c);
    return c;
  }

  async function server(tls: TlsFiles): Promise<number> {
    const started = await startGrpcServer({ host: HOST, port: 0 }, bindings, tls);
    servers.push(started.server);
    return started.port;
  }

  const get = (c: pb.WorkspaceCoordClient) => callUnary(c.getWorkspace.bind(c), { id: 'ziggie' }, { timeoutMs: 5000, peer: 'workspace-coord' });

  beforeAll(() => {
    pki = makePki();
  }, 60_000);

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) await stopGrpcServer(s, 1000);
  });

  afterAll(() => {
    releaseHangingCalls();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  describe('mutual TLS (server given a CA: client certificate required)', () => {
    let port: number;
    beforeEach(async () => {
      port = await server({ caFile: pki.ca, certFile: pki.server.cert, keyFile: pki.server.key });
    });

    it('accepts a client with a CA-signed certificate, by IP address (SAN IP:127.0.0.1)', async () => {
      const c = client(`${HOST}:${port}`, { caFile: pki.ca, certFile: pki.client.cert, keyFile: pki.client.key });
      await expect(get(c)).resolves.toEqual(workspace('ziggie'));
    });

    it('accepts the same client by host name (SAN DNS:localhost)', async () => {
      const c = client(`localhost:${port}`, { caFile: pki.ca, certFile: pki.client.cert, keyFile: pki.client.key });
      await expect(get(c)).resolves.toEqual(workspace('ziggie'));
    });

    it('rejects a client that trusts the CA but presents no certificate', async () => {
      const err = await rejectionOf(get(client(`${HOST}:${port}`, { caFile: pki.ca })));
      expect(err.code).toBe('SERVICE_UNAVAILABLE');
    });

    it('rejects a client whose certificate is signed by another CA', async () => {
      const err = await rejectionOf(get(client(`${HOST}:${port}`, { caFile: pki.ca, certFile: pki.rogue.clientCert, keyFile: pki.rogue.clientKey })));
      expect(err.code).toBe('SERVICE_UNAVAILABLE');
    });

    it('rejects an insecure (plaintext) client', async () => {
      const err = await rejectionOf(get(client(`${HOST}:${port}`)));
      expect(err.code).toBe('SERVICE_UNAVAILABLE');
    });

    it('is rejected by a client that does not trust the server CA', async () => {
      const err = await rejectionOf(get(client(`${HOST}:${port}`, { caFile: pki.rogue.ca, certFile: pki.client.cert, keyFile: pki.client.key })));
      expect(err.code).toBe('SERVICE_UNAVAILABLE');
    });
  });

  describe('server TLS without a CA (no client certificate required)', () => {
    let port: number;
    beforeEach(async () => {
      port = await server({ certFile: pki.server.cert, keyFile: pki.server.key });
    });

    it('accepts a client that only trusts the CA', async () => {
      const c = client(`${HOST}:${port}`, { caFile: pki.ca });
      await expect(get(c)).resolves.toEqual(workspace('ziggie'));
    });

    it('carries ZiggieErrors and correlation ids over TLS as well', async () => {
      const c = client(`${HOST}:${port}`, { caFile: pki.ca });
      const err = await rejectionOf(callUnary(c.getWorkspace.bind(c), { id: 'x' }, { timeoutMs: 5000 }));
      expect(err.code).toBe('NOT_FOUND');
      expect(err.extras).toEqual({ workspace: 'x' });
      seenCorrelationIds.length = 0;
      await runWithContext({ correlationId: 'corr-tls' }, () => get(c));
      expect(seenCorrelationIds).toEqual(['corr-tls']);
    });

    it('rejects an insecure (plaintext) client', async () => {
      const err = await rejectionOf(get(client(`${HOST}:${port}`)));
      expect(err.code).toBe('SERVICE_UNAVAILABLE');
    });
  });
});
