/**
 * A source that hears of session changes (the wts source's WTSWaitSystemEvent) makes the agent
 * poll at once: with a poll interval of an hour, a logon still reaches the collector.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '@rasmon/protocol';
import { Agent, type SessionSource } from '@rasmon/agent';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { useRedis } from './support/use-redis.js';
import { session } from './support/agent-client.js';

const FARM = 'farm-ev';
const HOST = 'rdsh-ev1';
const TOKEN = 'token-farm-ev';

/** A host whose list the test sets, telling its watcher of each change, counting the reads. */
class EventedHost implements SessionSource {
  readonly name = 'evented';
  sessions: Session[] = [];
  reads = 0;
  watchers = 0;
  private onChange: (() => void) | undefined;

  async list(): Promise<Session[]> {
    this.reads += 1;
    return this.sessions;
  }

  watch(onChange: () => void): () => void {
    this.watchers += 1;
    this.onChange = onChange;
    return () => {
      this.watchers -= 1;
      this.onChange = undefined;
    };
  }

  /** A burst of notices, as Windows sends for one logon (create, connect, logon, state change). */
  notify(times = 4): void {
    for (let i = 0; i < times; i += 1) this.onChange?.();
  }
}

const redis = useRedis();
let collector: InProcessCollector;
let dir: string;

beforeAll(async () => {
  collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: FARM, seats: 10, token: TOKEN }]));
  dir = mkdtempSync(join(tmpdir(), 'rasmon-agent-events-'));
});
afterAll(async () => {
  await collector?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function hostConnections(): Promise<string[]> {
  const res = await fetch(`${collector.url}/api/v1/farms/${FARM}`);
  const detail = (await res.json()) as { connections: Array<{ id: string; host: string }> };
  return detail.connections.filter((c) => c.host === HOST).map((c) => c.id);
}

describe('session events', () => {
  it('a change notice makes the agent poll at once, one poll per burst; stop ends the watch', async () => {
    const host = new EventedHost();
    const agent = new Agent({
      source: host,
      spool: { dir: join(dir, 'spool'), maxBytes: 1 << 20 },
      pollIntervalSeconds: 3600,
      snapshotIntervalSeconds: 3600,
      log: pino({ level: 'silent' }),
      link: {
        url: `ws://127.0.0.1:${collector.collector.address.port}`,
        token: TOKEN,
        farm: FARM,
        host: HOST,
        agent: 'rasmon-agent/test',
        backoff: { initialMs: 100, maxMs: 500 },
        supersededDelayMs: 1000,
      },
    });
    await agent.start();
    try {
      expect(host.watchers).toBe(1);
      await expect.poll(() => agent.connection.ready, { timeout: 10_000 }).toBe(true);
      const readsAtStart = host.reads;

      host.sessions = [session('3-1000', 'CORP\\alice', { since: Date.now() - 1000 })];
      host.notify();
      await expect.poll(() => hostConnections(), { timeout: 10_000 }).toEqual(['3-1000']);
      expect(host.reads - readsAtStart).toBe(1);

      host.sessions = [];
      host.notify(2);
      await expect.poll(() => hostConnections(), { timeout: 10_000 }).toEqual([]);
      expect(host.reads - readsAtStart).toBe(2);
    } finally {
      await agent.stop();
    }
    expect(host.watchers).toBe(0);
  });
});
