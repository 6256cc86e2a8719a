import { connect } from 'node:net';

/**
 * Sends `request` as raw bytes on a fresh loopback connection, ends its side, and resolves with
 * everything the server wrote back until it closed: for requests no HTTP client would send.
 */
export function rawHttpExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(request));
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('utf8')));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}
