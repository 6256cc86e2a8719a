import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import WebSocket from 'ws';

/**
 * MCP over WebSocket (subprotocol `mcp`), client side. The SDK's WebSocketClientTransport needs
 * the global WebSocket, which Node 20 lacks; this is the same protocol on the `ws` package,
 * plus headers (upstream credentials) and a frame size limit.
 */
export class WsClientTransport implements Transport {
  private socket?: WebSocket;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  constructor(
    private readonly url: URL,
    private readonly headers: Record<string, string>,
    private readonly maxFrameBytes: number,
  ) {}

  start(): Promise<void> {
    if (this.socket) throw new Error('WebSocket transport already started');
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url, 'mcp', { headers: this.headers, maxPayload: this.maxFrameBytes, handshakeTimeout: 10_000 });
      this.socket = socket;
      let opened = false;
      socket.on('open', () => {
        opened = true;
        resolve();
      });
      socket.on('error', (err) => {
        if (!opened) reject(err);
        this.onerror?.(err);
      });
      socket.on('close', () => this.onclose?.());
      socket.on('message', (data: WebSocket.RawData) => {
        let message: JSONRPCMessage;
        try {
          message = JSONRPCMessageSchema.parse(JSON.parse(data.toString()));
        } catch (err) {
          this.onerror?.(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        this.onmessage?.(message);
      });
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return Promise.reject(new Error('WebSocket not connected'));
    return new Promise((resolve, reject) => socket.send(JSON.stringify(message), (err) => (err ? reject(err) : resolve())));
  }

  close(): Promise<void> {
    this.socket?.terminate();
    return Promise.resolve();
  }
}
