import * as http from 'node:http';
import * as https from 'node:https';
import { StreamableHTTPClientTransport, StreamableHTTPError, type StreamableHTTPClientTransportOptions } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, isInitializedNotification, isInitializeRequest, isJSONRPCRequest, isJSONRPCResultResponse, JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { ZiggieError } from '@ziggie/contracts';
import { traceCarrier } from '@ziggie/platform';
import { tooLarge } from './http';

/** One server-sent event as the SSE format defines it (only the fields MCP uses). */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * An incremental text/event-stream parser: feed it decoded chunks, it calls `onEvent` per
 * complete event. Written here (a few lines of the WHATWG format) because the SDK's parser is a
 * chain of web streams per response, which is most of what an upstream call costs on this path.
 * `maxBuffered` bounds an event that never ends.
 */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private dataLength = 0;
  private id: string | undefined;

  constructor(
    private readonly onEvent: (e: SseEvent) => void,
    private readonly maxBuffered: number,
  ) {}

  push(chunk: string): void {
    this.buffer += chunk;
    const eol = /\r\n|\r|\n/g;
    let start = 0;
    for (let m = eol.exec(this.buffer); m; m = eol.exec(this.buffer)) {
      // A CR that ends the chunk may be the first half of a CRLF: wait for the next chunk.
      if (m[0] === '\r' && m.index === this.buffer.length - 1) break;
      this.line(this.buffer.slice(start, m.index));
      start = m.index + m[0].length;
    }
    this.buffer = this.buffer.slice(start);
    if (this.buffer.length + this.dataLength > this.maxBuffered) throw tooLarge(this.maxBuffered);
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0 || this.id !== undefined) this.onEvent({ event: this.event, data: this.data.join('\n'), ...(this.id !== undefined ? { id: this.id } : {}) });
      this.event = '';
      this.data = [];
      this.dataLength = 0;
      this.id = undefined;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') {
      this.data.push(value);
      this.dataLength += value.length;
    }
    else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
}

/** How far past maxResponseBytes one SSE event may grow before the stream is cut (memory bound only). */
const STREAM_EVENT_FACTOR = 4;
const STREAM_EVENT_MIN_BYTES = 1024 * 1024;

const mediaType = (contentType: string | undefined): string => (contentType ?? '').split(';')[0]!.trim().toLowerCase();

/** The SDK transport's private parts this class takes part in (session id, reconnection of a POST stream). */
interface SdkInternals {
  _sessionId?: string;
  _scheduleReconnection(options: { resumptionToken?: string; onresumptiontoken?: (token: string) => void; replayMessageId?: string | number }, attempt: number): void;
}

/**
 * MCP streamable HTTP to one upstream replica, one instance (and one keep-alive agent) per
 * connection. The session's set-up (initialize, initialized), the standalone GET stream,
 * resumption and closing stay the SDK's; every message after the handshake is one POST over
 * node:http on a kept-alive socket, its answer parsed from the socket's chunks (JSON or SSE) with
 * no web streams. The rules are the SDK's: JSON-RPC messages validated, the session id taken from
 * the answer, a POST stream cut before its response resumed from its last event id, a redirect
 * handed to the SDK (it follows one within the origin only). A JSON answer is bounded by
 * `maxResponseBytes`. An event stream is not (each result it carries is size-checked by the call
 * path, which answers UPSTREAM_RESPONSE_TOO_LARGE), but one event is held in memory only up to
 * STREAM_EVENT_FACTOR × that: past it the stream is cut and the request it answers fails.
 */
export class KeepAliveStreamableHTTPClientTransport extends StreamableHTTPClientTransport {
  private readonly agent: http.Agent;
  private readonly requests = new Set<http.ClientRequest>();
  private handshakeDone = false;
  private closed = false;
  /** Messages reach the client one microtask apart, as the SDK's stream reader hands them over. */
  private delivery: Promise<void> = Promise.resolve();

  constructor(
    private readonly endpoint: URL,
    private readonly upstreamHeaders: Record<string, string>,
    private readonly maxResponseBytes: number,
    opts: StreamableHTTPClientTransportOptions,
  ) {
    super(endpoint, opts);
    this.agent = endpoint.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  override async send(message: JSONRPCMessage | JSONRPCMessage[], options?: TransportSendOptions): Promise<void> {
    if (!this.handshakeDone || options?.resumptionToken || Array.isArray(message) || isInitializeRequest(message)) {
      await super.send(message as JSONRPCMessage, options);
      if (!Array.isArray(message) && isInitializedNotification(message)) this.handshakeDone = true;
      return;
    }
    try {
      await this.post(message, options);
    } catch (err) {
      this.onerror?.(err as Error);
      throw err;
    }
  }

  override async close(): Promise<void> {
    this.closed = true;
    for (const req of this.requests) req.destroy();
    this.requests.clear();
    this.agent.destroy();
    await super.close();
  }

  /**
   * The client queues a notification's handler as a microtask but settles a response at once:
   * a progress notification handed over in the same tick as its call's result would find the
   * call already gone. One microtask between messages keeps them in the order they came.
   */
  private deliver(message: JSONRPCMessage): void {
    this.delivery = this.delivery.then(() => this.onmessage?.(message));
  }

  private headers(body: string): Record<string, string> {
    const headers: Record<string, string> = {};
    const taken = new Set<string>();
    for (const [k, v] of Object.entries(this.upstreamHeaders)) {
      headers[k] = v;
      taken.add(k.toLowerCase());
    }
    // Trace context of the call this message belongs to; headers the upstream's config sets win.
    for (const [k, v] of Object.entries(traceCarrier())) if (!taken.has(k.toLowerCase())) headers[k] = v;
    headers['content-type'] = 'application/json';
    headers.accept = 'application/json, text/event-stream';
    headers['content-length'] = String(Buffer.byteLength(body));
    if (this.sessionId) headers['mcp-session-id'] = this.sessionId;
    if (this.protocolVersion) headers['mcp-protocol-version'] = this.protocolVersion;
    return headers;
  }

  private post(message: JSONRPCMessage, options: TransportSendOptions | undefined, retried = false): Promise<void> {
    if (this.closed) return Promise.reject(new Error('transport closed'));
    const body = JSON.stringify(message);
    const client = this.endpoint.protocol === 'https:' ? https : http;
    return new Promise<void>((resolve, reject) => {
      let answered = false;
      const req = client.request(this.endpoint, { method: 'POST', headers: this.headers(body), agent: this.agent }, (res) => {
        answered = true;
        const sid = res.headers['mcp-session-id'];
        if (typeof sid === 'string' && sid) (this as unknown as SdkInternals)._sessionId = sid;
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) {
          res.resume();
          super.send(message, options).then(resolve, reject);
          return;
        }
        if (status < 200 || status >= 300) {
          this.collect(res, (err, text) => reject(new StreamableHTTPError(status, `Error POSTing to endpoint: ${err ? err.message : text}`)));
          return;
        }
        if (status === 202 || !isJSONRPCRequest(message)) {
          res.resume();
          res.on('end', resolve);
          res.on('error', reject);
          return;
        }
        const type = mediaType(res.headers['content-type']);
        if (type === 'text/event-stream') {
          this.stream(res, message, options);
          resolve();
        } else if (type === 'application/json') {
          const declared = Number(res.headers['content-length'] ?? 'NaN');
          if (declared > this.maxResponseBytes) {
            res.destroy();
            reject(tooLarge(this.maxResponseBytes));
            return;
          }
          this.collect(res, (err, text) => {
            if (err) return reject(err);
            try {
              const data = JSON.parse(text) as unknown;
              const messages = (Array.isArray(data) ? data : [data]).map((m) => JSONRPCMessageSchema.parse(m));
              for (const m of messages) this.deliver(m);
              resolve();
            } catch (parseErr) {
              reject(parseErr as Error);
            }
          });
        } else {
          res.resume();
          reject(new StreamableHTTPError(-1, `Unexpected content type: ${res.headers['content-type']}`));
        }
      });
      this.requests.add(req);
      req.on('close', () => this.requests.delete(req));
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive socket the upstream closed as it was reused: nothing reached the server, so
        // the message goes once more on a fresh socket (Node's documented request.reusedSocket case).
        if (!answered && !retried && req.reusedSocket && err.code === 'ECONNRESET') this.post(message, options, true).then(resolve, reject);
        else reject(err);
      });
      req.end(body);
    });
  }

  /** A whole (non-stream) body as text, refused past maxResponseBytes. */
  private collect(res: http.IncomingMessage, done: (err: Error | undefined, text: string) => void): void {
    const chunks: Buffer[] = [];
    let seen = 0;
    let finished = false;
    const finish = (err: Error | undefined, text = ''): void => {
      if (finished) return;
      finished = true;
      done(err, text);
    };
    res.on('data', (chunk: Buffer) => {
      seen += chunk.byteLength;
      if (seen > this.maxResponseBytes) {
        res.destroy();
        finish(tooLarge(this.maxResponseBytes));
        return;
      }
      chunks.push(chunk);
    });
    res.on('end', () => finish(undefined, Buffer.concat(chunks).toString('utf8')));
    res.on('error', (err) => finish(err));
    res.on('close', () => finish(new Error('upstream closed the response before its end')));
  }

  /** The events of a POST's SSE answer, as the SDK handles them (resumption included). */
  private stream(res: http.IncomingMessage, request: JSONRPCMessage, options: TransportSendOptions | undefined): void {
    const onresumptiontoken = options?.onresumptiontoken;
    let lastEventId: string | undefined;
    let receivedResponse = false;
    let ended = false;
    const parser = new SseParser((event) => {
      if (event.id) {
        lastEventId = event.id;
        onresumptiontoken?.(event.id);
      }
      if (!event.data || (event.event !== '' && event.event !== 'message')) return;
      try {
        const message = JSONRPCMessageSchema.parse(JSON.parse(event.data));
        if (isJSONRPCResultResponse(message)) receivedResponse = true;
        this.deliver(message);
      } catch (err) {
        this.onerror?.(err as Error);
      }
    }, Math.max(STREAM_EVENT_MIN_BYTES, STREAM_EVENT_FACTOR * this.maxResponseBytes));
    const end = (err?: Error): void => {
      if (ended) return;
      ended = true;
      if (err) this.onerror?.(new Error(`SSE stream disconnected: ${err.message}`));
      // An event too large to hold: the request it answers fails now rather than at its timeout.
      if (err instanceof ZiggieError && !receivedResponse && isJSONRPCRequest(request)) {
        receivedResponse = true;
        this.deliver({ jsonrpc: '2.0', id: request.id, error: { code: ErrorCode.InternalError, message: err.message, data: { code: err.code, ...err.extras } } });
      }
      // Cut before its response after a priming event: resumed from there, as the SDK does.
      if (lastEventId !== undefined && !receivedResponse && !this.closed) (this as unknown as SdkInternals)._scheduleReconnection({ resumptionToken: lastEventId, onresumptiontoken }, 0);
    };
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      try {
        parser.push(chunk);
      } catch (err) {
        res.destroy();
        end(err as Error);
      }
    });
    res.on('end', () => end());
    res.on('error', (err) => end(err));
    res.on('close', () => end(res.complete ? undefined : new Error('connection closed')));
  }
}
