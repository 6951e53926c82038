/**
 * `http.proxyProtocol`: the collector's server reads a PROXY protocol header (proxy-header.ts) off
 * each connection from `http.trustedProxies` before its HTTP parser, or its TLS handshake, sees a
 * byte; the header comes before both. The address it names stands in for the connection's peer
 * wherever the collector asks for the client (the upgrade limits, the agent's address).
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { Server as TlsServer } from 'node:tls';
import { readProxyHeader, type ProxyHeaderRefusal } from './proxy-header.js';

/** The agent's address a PROXY header gave, by the socket the server was handed. */
const proxied = new WeakMap<object, string>();

/**
 * The peer of a request's socket: the PROXY header's source address when there was one, else the
 * TCP peer. Over TLS the request's socket is node's TLSSocket around the stream the server was
 * handed (AfterHeader); node keeps no public reference to it, only its TLS handle's `_parentWrap`
 * (a JSStreamSocket) and that one's `stream` (lib/_tls_wrap.js, lib/internal/js_stream_socket.js);
 * test/proxy-protocol.test.ts checks the path still holds (it passes on Node 20, the suite's, and on
 * Node 24.22, the container image's, where a missing path would key every TLS agent by the balancer).
 */
export function peerAddress(socket: Duplex): string | undefined {
  const direct = proxied.get(socket);
  if (direct !== undefined) return direct;
  const wrapped = (socket as { _handle?: { _parentWrap?: { stream?: object } } })._handle?._parentWrap?.stream;
  return (wrapped && proxied.get(wrapped)) ?? (socket as Partial<Socket>).remoteAddress;
}

/**
 * The raw socket as a plain stream, the bytes read past the header first. node's TLS takes a
 * net.Socket's handle over and reads the kernel's bytes itself, so bytes already read (a ClientHello
 * that came in the header's packet) would be lost; from a stream that is not a net.Socket it reads
 * what the stream gives.
 */
class AfterHeader extends Duplex {
  constructor(
    private readonly raw: Socket,
    rest: Buffer,
  ) {
    super({ allowHalfOpen: false });
    if (rest.length > 0) this.push(rest);
    raw.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) raw.pause();
    });
    raw.on('end', () => this.push(null));
    raw.on('error', (err) => this.destroy(err));
    raw.on('close', () => this.destroy());
  }

  get remoteAddress(): string | undefined {
    return this.raw.remoteAddress;
  }

  override _read(): void {
    this.raw.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.raw.write(chunk, encoding, done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.raw.end(done);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.raw.destroy();
    done(err);
  }
}

export interface ProxyProtocolOptions {
  /** Whether the connection's TCP peer is a trusted balancer (one that must send the header). */
  trusted: (peer: string) => boolean;
  /** The header must be whole within this. */
  timeoutMs: number;
  /** A connection was destroyed for its header; given no address (docs/design.md §6). */
  refused: (reason: ProxyHeaderRefusal) => void;
}

/**
 * Puts the header's reading in front of `server`'s own connection handling: the listeners it has
 * for `connection` (http's parser, or tls's handshake) get the socket once its header is read. A
 * connection from any other peer goes straight to them, and a PROXY header from it is not honoured:
 * it reaches the HTTP parser (400) or the TLS handshake (which fails), like any other bad request.
 */
export function acceptProxyProtocol(server: Server, options: ProxyProtocolOptions): void {
  const listeners = server.listeners('connection') as Array<(socket: Duplex) => void>;
  server.removeAllListeners('connection');
  const handOn = (socket: Duplex) => {
    for (const listener of listeners) listener.call(server, socket);
  };
  const tls = server instanceof TlsServer;
  server.on('connection', (socket: Socket) => {
    const peer = socket.remoteAddress;
    if (peer === undefined || !options.trusted(peer)) return handOn(socket);
    readProxyHeader(
      socket,
      options.timeoutMs,
      (address, rest) => {
        if (tls) {
          const stream = new AfterHeader(socket, rest);
          if (address !== undefined) proxied.set(stream, address);
          return handOn(stream);
        }
        if (address !== undefined) proxied.set(socket, address);
        if (rest.length > 0) socket.unshift(rest);
        handOn(socket);
        // Paused while the header was read; http's own handling expects a flowing socket.
        socket.resume();
      },
      options.refused,
    );
  });
}
