// A real OTLP/HTTP trace receiver on loopback, for tests that check what the services export:
// `POST /v1/traces` in OTLP/JSON (what the services' exporter sends) or OTLP/protobuf, plain or
// gzip. Other signals (`/v1/metrics`, `/v1/logs`) are accepted and counted, not decoded.
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { gunzipSync, inflateSync } from 'node:zlib';

/** SpanKind as OTLP numbers it. */
export const OtlpSpanKind = { UNSPECIFIED: 0, INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Absent for a root span. */
  parentSpanId?: string;
  name: string;
  kind: number;
  /** The `service.name` resource attribute. */
  service: string;
  scope: string;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage?: string;
}

export interface OtlpReceiver {
  /** The base URL, e.g. for OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string;
  /** Every span received so far, in arrival order. */
  readonly spans: ReceivedSpan[];
  /** Requests per path, including the ones that were not traces. */
  readonly requests: Map<string, number>;
  /** Decoding failures (the export was answered 400). */
  readonly errors: string[];
  spansOf(traceId: string): ReceivedSpan[];
  /** Resolves with the trace's spans once `done` holds for them; rejects after timeoutMs. */
  waitForTrace(traceId: string, done: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

const MAX_BODY = 32 * 1024 * 1024;

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const requests = new Map<string, number>();
  const errors: string[] = [];
  const waiters = new Set<() => void>();

  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.set(path, (requests.get(path) ?? 0) + 1);
    let body: Buffer;
    try {
      body = decompress(await readBody(req), String(req.headers['content-encoding'] ?? ''));
    } catch (err) {
      errors.push(`${path}: ${(err as Error).message}`);
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ message: (err as Error).message }));
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const json = type === 'application/json';
    if (path === '/v1/traces') {
      try {
        const received = json ? spansFromJson(JSON.parse(body.toString('utf8'))) : type === 'application/x-protobuf' ? spansFromProtobuf(body) : undefined;
        if (!received) {
          res.writeHead(415).end();
          return;
        }
        spans.push(...received);
      } catch (err) {
        errors.push(`${path}: ${(err as Error).message}`);
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ message: (err as Error).message }));
        return;
      }
      for (const wake of [...waiters]) wake();
    }
    // An empty ExportServiceResponse: everything accepted.
    if (json) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const spansOf = (traceId: string) => spans.filter((s) => s.traceId === traceId);
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    requests,
    errors,
    spansOf,
    waitForTrace(traceId, done, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const mine = spansOf(traceId);
          if (!done(mine)) return false;
          cleanup();
          resolve(mine);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          const mine = spansOf(traceId);
          reject(new Error(`trace ${traceId} incomplete after ${timeoutMs} ms; ${mine.length} spans:\n${mine.map((s) => `  ${s.service} ${s.name}`).join('\n')}`));
        }, timeoutMs);
        const wake = () => void check();
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(wake);
        };
        waiters.add(wake);
        check();
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function decompress(body: Buffer, encoding: string): Buffer {
  if (encoding === '' || encoding === 'identity') return body;
  if (encoding === 'gzip') return gunzipSync(body);
  if (encoding === 'deflate') return inflateSync(body);
  throw new Error(`unsupported content-encoding ${encoding}`);
}

// ---------------------------------------------------------------------------------------------
// OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): ids are hex,
// 64-bit integers may be strings, enums are numbers.

interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  bytesValue?: string;
  arrayValue?: { values?: JsonAnyValue[] };
  kvlistValue?: { values?: JsonKeyValue[] };
}
interface JsonKeyValue {
  key: string;
  value?: JsonAnyValue;
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: JsonKeyValue[];
  status?: { code?: number; message?: string };
}
interface JsonRequest {
  resourceSpans?: Array<{
    resource?: { attributes?: JsonKeyValue[] };
    scopeSpans?: Array<{ scope?: { name?: string }; spans?: JsonSpan[] }>;
  }>;
}

/** OTLP/JSON ids are hex; some senders use base64 (the generic protobuf JSON mapping). */
function jsonId(id: string | undefined, bytes: number): string | undefined {
  if (!id) return undefined;
  if (/^[0-9a-fA-F]+$/.test(id) && id.length === bytes * 2) return id.toLowerCase();
  const decoded = Buffer.from(id, 'base64');
  if (decoded.length === bytes) return decoded.toString('hex');
  throw new Error(`malformed id ${JSON.stringify(id)}`);
}

function jsonValue(v: JsonAnyValue | undefined): unknown {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return Number(v.doubleValue);
  if (v.bytesValue !== undefined) return Buffer.from(v.bytesValue, 'base64');
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(jsonValue);
  if (v.kvlistValue) return jsonAttributes(v.kvlistValue.values);
  return undefined;
}

function jsonAttributes(kvs: JsonKeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((kvs ?? []).map((kv) => [kv.key, jsonValue(kv.value)]));
}

export function spansFromJson(request: JsonRequest): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of request.resourceSpans ?? []) {
    const resource = jsonAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        const parent = jsonId(s.parentSpanId, 8);
        out.push({
          traceId: jsonId(s.traceId, 16)!,
          spanId: jsonId(s.spanId, 8)!,
          ...(parent ? { parentSpanId: parent } : {}),
          name: s.name,
          kind: s.kind ?? 0,
          service: String(resource['service.name'] ?? ''),
          scope: ss.scope?.name ?? '',
          attributes: jsonAttributes(s.attributes),
          resource,
          startTimeUnixNano: BigInt(s.startTimeUnixNano ?? 0),
          endTimeUnixNano: BigInt(s.endTimeUnixNano ?? 0),
          statusCode: s.status?.code ?? 0,
          ...(s.status?.message ? { statusMessage: s.status.message } : {}),
        });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// OTLP/protobuf: just enough of the wire format for ExportTraceServiceRequest
// (opentelemetry/proto/collector/trace/v1, trace/v1, common/v1, resource/v1).

type Field = { no: number; wire: number; varint?: bigint; bytes?: Buffer; fixed?: Buffer };

function readVarint(buf: Buffer, pos: { i: number }): bigint {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos.i >= buf.length) throw new Error('truncated varint');
    const b = buf[pos.i++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return result;
    shift += 7n;
    if (shift > 63n) throw new Error('varint too long');
  }
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  const pos = { i: 0 };
  while (pos.i < buf.length) {
    const tag = Number(readVarint(buf, pos));
    const no = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) out.push({ no, wire, varint: readVarint(buf, pos) });
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      if (pos.i + n > buf.length) throw new Error('truncated fixed field');
      out.push({ no, wire, fixed: buf.subarray(pos.i, pos.i + n) });
      pos.i += n;
    } else if (wire === 2) {
      const len = Number(readVarint(buf, pos));
      if (pos.i + len > buf.length) throw new Error('truncated length-delimited field');
      out.push({ no, wire, bytes: buf.subarray(pos.i, pos.i + len) });
      pos.i += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const str = (f: Field | undefined) => f?.bytes?.toString('utf8') ?? '';
const hex = (f: Field | undefined) => (f?.bytes && f.bytes.length > 0 ? f.bytes.toString('hex') : undefined);
const all = (fs: Field[], no: number) => fs.filter((f) => f.no === no);
const one = (fs: Field[], no: number) => fs.find((f) => f.no === no);

function pbValue(buf: Buffer): unknown {
  const fs = fields(buf);
  const f = fs[fs.length - 1];
  if (!f) return undefined;
  switch (f.no) {
    case 1:
      return str(f);
    case 2:
      return f.varint !== 0n;
    case 3:
      return Number(BigInt.asIntN(64, f.varint ?? 0n));
    case 4:
      return f.fixed!.readDoubleLE(0);
    case 5:
      return all(fields(f.bytes!), 1).map((v) => pbValue(v.bytes!));
    case 6:
      return pbAttributes(all(fields(f.bytes!), 1));
    case 7:
      return Buffer.from(f.bytes!);
    default:
      return undefined;
  }
}

function pbAttributes(kvs: Field[]): Record<string, unknown> {
  return Object.fromEntries(
    kvs.map((kv) => {
      const fs = fields(kv.bytes!);
      const v = one(fs, 2);
      return [str(one(fs, 1)), v ? pbValue(v.bytes!) : undefined];
    }),
  );
}

export function spansFromProtobuf(body: Buffer): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of all(fields(body), 1)) {
    const rsf = fields(rs.bytes!);
    const res = one(rsf, 1);
    const resource = res ? pbAttributes(all(fields(res.bytes!), 1)) : {};
    for (const ss of all(rsf, 2)) {
      const ssf = fields(ss.bytes!);
      const sc = one(ssf, 1);
      const scope = sc ? str(one(fields(sc.bytes!), 1)) : '';
      for (const sp of all(ssf, 2)) {
        const f = fields(sp.bytes!);
        const status = one(f, 15);
        const sf = status ? fields(status.bytes!) : [];
        const parent = hex(one(f, 4));
        const message = str(one(sf, 2));
        out.push({
          traceId: hex(one(f, 1)) ?? '',
          spanId: hex(one(f, 2)) ?? '',
          ...(parent ? { parentSpanId: parent } : {}),
          name: str(one(f, 5)),
          kind: Number(one(f, 6)?.varint ?? 0n),
          service: String(resource['service.name'] ?? ''),
          scope,
          attributes: pbAttributes(all(f, 9)),
          resource,
          startTimeUnixNano: one(f, 7)?.fixed?.readBigUInt64LE(0) ?? 0n,
          endTimeUnixNano: one(f, 8)?.fixed?.readBigUInt64LE(0) ?? 0n,
          statusCode: Number(one(sf, 3)?.varint ?? 0n),
          ...(message ? { statusMessage: message } : {}),
        });
      }
    }
  }
  return out;
}
