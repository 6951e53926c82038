/**
 * `http.proxyProtocol`: the real collector bin behind a simulated TCP load balancer, on loopback.
 * The balancer connects from 127.0.0.2 (the one trusted address) and starts each connection with a
 * PROXY protocol header, v1 or v2, naming the agent behind it; the test's own requests from
 * 127.0.0.1 are an untrusted peer's.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { WebSocket } from 'ws';
import { useRedis } from './support/use-redis.js';
import { CollectorProcess, InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, UpgradeRefused } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';
import { selfSignedCertificate } from '../demo/src/broker/self-signed.js';

const redis = useRedis();
const BALANCER = '127.0.0.2';
const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

async function collector(extra: Record<string, unknown> = {}) {
  const proc = await CollectorProcess.start(
    rawConfig(redis.url, [{ id: 'farm-a', seats: 50 }], {
      http: { trustedProxies: [`${BALANCER}/32`], proxyProtocol: true },
      ...extra,
    }),
  );
  onTestFinished(() => proc.stop());
  return proc;
}

function v1(source: string): string {
  return source.includes(':')
    ? `PROXY TCP6 ${source} ::1 40000 443\r\n`
    : `PROXY TCP4 ${source} 127.0.0.1 40000 443\r\n`;
}

/** A version 2 header: PROXY over TCP4 from `source`, or LOCAL for 'LOCAL'; `tlv` bytes after the addresses. */
function v2(source: string, tlv = Buffer.alloc(0)): Buffer {
  if (source === 'LOCAL') return Buffer.concat([SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const addresses = Buffer.alloc(12);
  source.split('.').forEach((octet, i) => addresses.writeUInt8(Number(octet), i));
  [127, 0, 0, 1].forEach((octet, i) => addresses.writeUInt8(octet, 4 + i));
  addresses.writeUInt16BE(40000, 8);
  addresses.writeUInt16BE(443, 10);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(addresses.length + tlv.length);
  return Buffer.concat([SIGNATURE, Buffer.from([0x21, 0x11]), length, addresses, tlv]);
}

/** A connection from the balancer's address that starts with `header`. */
function fromBalancer(port: number, header: string | Buffer): Socket {
  const socket = connect({ port, host: '127.0.0.1', localAddress: BALANCER });
  socket.write(header);
  return socket;
}

/** An agent's upgrade through the balancer: its status (101 when admitted). */
async function upgrade(c: CollectorProcess, header: string | Buffer, token = 'token-farm-a'): Promise<number> {
  try {
    const agent = await TestAgent.connect(c.url, token, { createConnection: () => fromBalancer(c.port, header) });
    agent.socket.terminate();
    return 101;
  } catch (err) {
    if (err instanceof UpgradeRefused) return err.status;
    throw err;
  }
}

/** An HTTP/1.1 GET through the balancer, the whole answer as text ('' when the socket was closed unanswered). */
function get(port: number, header: string | Buffer, path: string, from = BALANCER): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: from });
    socket.write(header);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(text));
  });
}

/** Writes `bytes` from the balancer and waits for the collector to close the connection. */
function closedAfter(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = fromBalancer(port, bytes);
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(text));
  });
}

async function refused(url: string, reason: string): Promise<number> {
  // One test gives the collector a 1 s response deadline: on a busy machine a scrape may be cut
  // before its answer, so it is asked again.
  const scrape = await vi.waitFor(() => Scrape.from(url), { timeout: 15_000, interval: 200 });
  return scrape.all('rasmon_collector_proxy_header_refused_total', { reason }).reduce((sum, s) => sum + s.value, 0);
}

describe('PROXY protocol from a trusted load balancer', () => {
  it('admits an agent behind a v1 header (TCP4 and TCP6) and a v2 header with TLVs, and says welcome to its hello', async () => {
    const c = await collector();
    for (const header of [
      v1('192.0.2.10'),
      v1('2001:db8::10'),
      v2('192.0.2.11', Buffer.from([0x04, 0x00, 0x02, 0xab, 0xcd])),
    ]) {
      const agent = await TestAgent.connect(c.url, 'token-farm-a', {
        createConnection: () => fromBalancer(c.port, header),
      });
      onTestFinished(() => agent.socket.terminate());
      const welcome = await agent.hello(
        'farm-a',
        `rdsh-${agent.socket.url.length}-${Math.random().toString(36).slice(2, 6)}`,
      );
      expect(welcome.type).toBe('welcome');
      agent.socket.terminate();
    }
  });

  it('gives two agents behind one balancer each its own upgrade budget; one agent reconnecting is still one address', async () => {
    const c = await collector({ limits: { upgradesPerSecondPerAddress: 1, upgradeBurstPerAddress: 3 } });
    // One agent with a wrong token, reconnecting at once, runs out of its burst (a token a second back).
    const first: number[] = [];
    for (let i = 0; i < 20; i++) first.push(await upgrade(c, v2('192.0.2.1'), 'wrong'));
    expect(first.slice(0, 3)).toEqual([401, 401, 401]);
    expect(first.filter((status) => status === 429).length).toBeGreaterThanOrEqual(10);
    // Other agents through the same balancer, by v1 and by v2: each its own burst.
    for (const header of [v1('192.0.2.2'), v1('192.0.2.2'), v2('192.0.2.3'), v2('192.0.2.3'), v2('192.0.2.3')]) {
      expect(await upgrade(c, header)).toBe(101);
    }
  });

  it("answers the balancer's LOCAL health check and /metrics as its own peer's; v1 UNKNOWN likewise", async () => {
    const c = await collector();
    expect(await get(c.port, v2('LOCAL'), '/readyz')).toMatch(/^HTTP\/1\.1 200/);
    expect(await get(c.port, 'PROXY UNKNOWN\r\n', '/healthz')).toMatch(/^HTTP\/1\.1 200/);
    expect(await get(c.port, v1('192.0.2.9'), '/metrics')).toContain('rasmon_collector_proxy_header_refused_total');
  });

  it('destroys a connection from the balancer whose header is missing, malformed, too long or never whole, and counts each', async () => {
    const c = await collector({ limits: { httpTimeoutSeconds: 1 } });
    expect(await closedAfter(c.port, 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')).toBe('');
    expect(await closedAfter(c.port, 'PROXY TCP4 192.0.2.1 nonsense 1 2\r\n')).toBe('');
    expect(await closedAfter(c.port, Buffer.concat([SIGNATURE, Buffer.from([0x31, 0x11, 0x00, 0x0c])]))).toBe('');
    expect(await closedAfter(c.port, `PROXY TCP4 ${'1'.repeat(120)}`)).toBe('');
    expect(await closedAfter(c.port, Buffer.concat([SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]))).toBe('');
    // Half a header, then nothing: closed once the HTTP timeout has passed.
    expect(await closedAfter(c.port, 'PROXY TCP4 192.0.2.1 ')).toBe('');
    expect(await refused(c.url, 'missing')).toBe(1);
    expect(await refused(c.url, 'malformed')).toBe(2);
    expect(await refused(c.url, 'too_long')).toBe(2);
    expect(await refused(c.url, 'timeout')).toBe(1);
    // Logged without an address.
    const log = c.output.join('');
    expect(log).toContain('refused a connection for its PROXY header');
    expect(log).not.toContain('192.0.2.1');
    // The collector still serves the balancer's good connections.
    expect(await upgrade(c, v1('192.0.2.4'))).toBe(101);
  });

  it('serves an untrusted peer as without a balancer, and honours no PROXY header from it', async () => {
    const c = await collector();
    expect(await get(c.port, '', '/readyz', '127.0.0.1')).toMatch(/^HTTP\/1\.1 200/);
    expect(await get(c.port, v1('192.0.2.1'), '/readyz', '127.0.0.1')).toMatch(/^HTTP\/1\.1 400/);
    expect(await refused(c.url, 'missing')).toBe(0);
  });
});

describe('PROXY protocol before TLS', () => {
  it('reads the header before the handshake, also when the ClientHello comes in the same packet', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rasmon-proxy-tls-'));
    // The demo broker's generator: a certificate for 127.0.0.1, valid from an hour before now.
    const { key, cert } = selfSignedCertificate(['127.0.0.1'], new Date(), 2);
    writeFileSync(join(dir, 'key.pem'), key);
    writeFileSync(join(dir, 'cert.pem'), cert);
    const collector = await InProcessCollector.start(
      rawConfig(redis.url, [{ id: 'farm-a', seats: 5 }], {
        tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
        http: { trustedProxies: [`${BALANCER}/32`], proxyProtocol: true },
        limits: { upgradesPerSecondPerAddress: 1, upgradeBurstPerAddress: 2 },
      }),
    );
    onTestFinished(() => collector.stop());
    const port = collector.collector.address.port;
    const wss = (header: string | Buffer, together: boolean, token = 'token-farm-a') =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(`wss://127.0.0.1:${port}/v1/agent`, ['rasmon.v1'], {
          headers: { Authorization: `Bearer ${token}` },
          createConnection: () => {
            const raw = connect({ port, host: '127.0.0.1', localAddress: BALANCER });
            // Corked: the header and the ClientHello leave in one write.
            if (together) raw.cork();
            raw.write(header);
            if (together) setImmediate(() => raw.uncork());
            return tlsConnect({ socket: raw, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
          },
        });
        socket.once('open', () => {
          resolve(101);
          socket.terminate();
        });
        socket.once('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
        });
        socket.once('error', () => resolve(0));
      });
    // One agent runs out of its burst; the next two of another are still admitted: their own addresses.
    const first: number[] = [];
    for (let i = 0; i < 20; i++) first.push(await wss(v1('192.0.2.1'), i % 2 === 0, 'wrong'));
    expect(first.slice(0, 2)).toEqual([401, 401]);
    expect(first.filter((status) => status === 429).length).toBeGreaterThanOrEqual(10);
    expect(await wss(v2('192.0.2.2'), true)).toBe(101);
    expect(await wss(v2('192.0.2.2'), false)).toBe(101);
  });
});
