/**
 * The servers a suite starts are its own: ports no other worker and no kernel-picked port can take
 * (test/support/free-port.ts), and a redis-server that finds its port held does not hand the suite the
 * one holding it (test/support/redis-server.ts).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { Redis } from 'ioredis';
import { describe, expect, it, onTestFinished } from 'vitest';
import { freePort } from './support/free-port.js';
import { RedisServer } from './support/redis-server.js';

// Read here again rather than taken from free-port.ts: what it hands out is checked against the kernel.
const [ephemeralLow, ephemeralHigh] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
  .trim()
  .split(/\s+/)
  .map(Number) as [number, number];

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('freePort', () => {
  it('hands concurrent callers different ports, none in the range the kernel picks from', async () => {
    const ports = await Promise.all(Array.from({ length: 40 }, () => freePort()));
    expect(new Set(ports).size).toBe(40);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(20_000);
      expect(port < ephemeralLow || port > ephemeralHigh, `${port}`).toBe(true);
    }
  });

  it('skips a port that something listens on', async () => {
    const last = await freePort();
    // The ports it would try next, held.
    const held = await Promise.all([1, 2, 3].map((step) => listenOn(last + step)));
    onTestFinished(() => held.forEach((server) => server.close()));
    const next = await freePort();
    expect([last + 1, last + 2, last + 3]).not.toContain(next);
    await listenOn(next).then((server) => server.close());
  });
});

describe('RedisServer', () => {
  it('refuses a port that another redis-server answers on', async () => {
    const own = await RedisServer.start();
    onTestFinished(() => own.stop());
    await own.kill();
    // Another server takes the port while this one is down…
    const other = spawn('redis-server', ['--port', String(own.port), '--bind', '127.0.0.1', '--save', ''], {
      stdio: 'ignore',
    });
    onTestFinished(() => void other.kill('SIGKILL'));
    const client = new Redis(own.port, '127.0.0.1', { retryStrategy: () => 50 });
    client.on('error', () => undefined);
    try {
      expect(await client.ping()).toBe('PONG');
    } finally {
      client.disconnect();
    }
    // …so the restarted one cannot bind it: the suite must not be handed the other one.
    await expect(own.restart()).rejects.toThrow(
      `port ${own.port} is held by another redis-server (process ${other.pid})`,
    );
  });
});
