/**
 * What the agent says when it cannot reach the collector, from real failed connections: a plain
 * port asked for TLS, a TLS port asked for plain WebSocket, nothing listening.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { explainConnectError } from '../src/link/connect-error.js';

const servers: Array<{ close(): unknown }> = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

async function listen<T extends Server | ReturnType<typeof createTlsServer>>(server: T): Promise<number> {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** The error a real WebSocket connection to `url` fails with. */
async function failure(url: string): Promise<Error> {
  const socket = new WebSocket(url, { handshakeTimeout: 5000 });
  const [err] = (await once(socket, 'error')) as [Error];
  socket.terminate();
  return err;
}

describe('connection errors in plain words', () => {
  it('wss:// against a plain port: use ws://, not OpenSSL text alone', async () => {
    const port = await listen(createServer((_req, res) => res.end('plain')));
    const url = `wss://127.0.0.1:${port}`;
    const line = explainConnectError(await failure(url), url);
    expect(line).toMatch(
      new RegExp(
        `^the collector at 127\\.0\\.0\\.1:${port} does not speak TLS on this port: use ws:// instead of wss://`,
      ),
    );
  });

  it('ws:// against a TLS port: use wss://', async () => {
    // A TLS listener without a certificate: it fails every handshake, as a TLS port does for plain text.
    const tls = createTlsServer({}, (socket) => socket.end());
    tls.on('tlsClientError', () => undefined);
    const port = await listen(tls);
    const url = `ws://127.0.0.1:${port}`;
    expect(explainConnectError(await failure(url), url)).toMatch(
      /closed the connection at once: if it uses TLS, use wss:\/\//,
    );
  });

  it('nothing listening: is the collector running, and the port right', async () => {
    const port = await listen(createServer());
    servers.pop()!.close();
    const url = `ws://127.0.0.1:${port}`;
    expect(explainConnectError(await failure(url), url)).toBe(
      `unreachable: nothing listens at 127.0.0.1:${port}; is the collector running, and is the port right? (ECONNREFUSED)`,
    );
  });

  it('an untrusted certificate: set tls.ca', () => {
    const err = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(explainConnectError(err, 'wss://c:9420')).toMatch(
      /^the collector's certificate is not trusted: set tls\.ca/,
    );
  });
});
