/**
 * A planned collector restart (docs/design.md §2 rule 10): at SIGTERM the collector hands each
 * host's lease over instead of releasing it, so real agents that reconnect to the collector started
 * after it take their hosts back without any host ever showing down or any user unverified; and
 * when no agent comes back, the leases lapse as they always did.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import type { Redis } from 'ioredis';
import { RedisKeys } from '@rasmon/collector';
import { freePort } from './support/free-port.js';
import { useRedis } from './support/use-redis.js';
import { CollectorProcess, rawConfig } from './support/collector-harness.js';
import { AgentProcess } from './support/agent-process.js';
import { SimulatedHost } from './support/agent-simulated-host.js';
import { TestAgent, session } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';

const FARM = 'farm-a';
const TOKEN = 'token-farm-a';
const HOSTS = ['rdsh-1', 'rdsh-2', 'rdsh-3'];

const redis = useRedis();

async function startCollector(raw: Record<string, unknown>, options: { port?: number; configPath?: string } = {}) {
  const collector = await CollectorProcess.start(raw, options);
  onTestFinished(() => collector.stop());
  return collector;
}

/** Redis's own clock (ms): leases are stamped with it (docs/design.md §2 rule 11). */
async function redisNow(client: Redis): Promise<number> {
  const [seconds, micros] = (await client.time()) as [string | number, string | number];
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/** What Redis holds of the farm's liveness: each host's lease (ms, or null), owner and live flag, and the unverified users. */
async function liveness(client: Redis, keys: RedisKeys) {
  const farm = keys.farm(FARM);
  const now = await redisNow(client);
  const hosts = await Promise.all(
    HOSTS.map(async (host) => {
      const [lease, [owner, live]] = await Promise.all([
        client.zscore(farm.lease, host),
        client.hmget(keys.host(FARM, host).host, 'owner', 'live'),
      ]);
      return { host, lease: lease === null ? null : Number(lease), owner, live };
    }),
  );
  const unverified = Number((await client.hget(farm.meta, 'unverified')) ?? 0);
  return { now, hosts, unverified };
}

describe('a planned restart', () => {
  it('agents that reconnect to the next collector keep every host up and every user verified throughout', async () => {
    const client = redis.client();
    const dir = mkdtempSync(join(tmpdir(), 'rasmon-planned-restart-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    // A lease of 60 s (3 × heartbeatSeconds) leaves the drain, the restart and the reconnects ample
    // room, however slowly a loaded machine runs them.
    const raw = rawConfig(redis.url, [{ id: FARM, seats: 1000, token: TOKEN }], { heartbeatSeconds: 20 });
    const keys = new RedisKeys((raw.redis as { prefix: string }).prefix);
    const first = await startCollector(raw);
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);

    const truth: Record<string, number> = {};
    const agents = await Promise.all(
      HOSTS.map(async (name, i) => {
        const hostDir = join(dir, name);
        mkdirSync(hostDir);
        const host = new SimulatedHost(hostDir, { seed: 40 + i, host: name });
        truth[name] = host.sessions().length;
        const agent = await AgentProcess.start({
          collector: `ws://127.0.0.1:${first.port}`,
          tokenFile,
          farm: FARM,
          host: name,
          source: 'command',
          command: host.command,
          pollIntervalSeconds: 0.5,
          snapshotIntervalSeconds: 3600,
          spool: { dir: join(hostDir, 'spool') },
          // Back within a second of the 1001, and retrying every half second while no collector listens.
          reconnect: { initialSeconds: 0.1, maxSeconds: 0.5, drainSpreadSeconds: 1 },
          metrics: { listen: `127.0.0.1:${await freePort()}` },
        });
        onTestFinished(() => agent.kill());
        return agent;
      }),
    );
    expect(agents).toHaveLength(HOSTS.length);

    const scrapeOf = async (url: string) => Scrape.from(url);
    const hostUp = (scrape: Scrape, host: string) => scrape.value('ras_agent_up', { farm: FARM, host });
    const before = await vi.waitFor(
      async () => {
        const scrape = await scrapeOf(first.url);
        for (const host of HOSTS) {
          expect(hostUp(scrape, host)).toBe(1);
          expect(scrape.value('ras_host_connections', { farm: FARM, host })).toBe(truth[host]);
        }
        return scrape;
      },
      { timeout: 20_000, interval: 200 },
    );
    const users = before.value('ras_license_users', { farm: FARM });
    expect(users).toBeGreaterThan(0);
    expect(before.value('ras_license_users_unverified', { farm: FARM })).toBe(0);
    const oldOwners = new Map((await liveness(client, keys)).hosts.map((h) => [h.host, h.owner]));

    // Every sample from the SIGTERM until every agent is back: in Redis (between the collectors there
    // is no /metrics), and on the new collector's /metrics once it answers.
    const samples: Array<Awaited<ReturnType<typeof liveness>>> = [];
    const scrapes: Scrape[] = [];
    let sampling = true;
    const started: { next?: CollectorProcess } = {};
    const sampler = (async () => {
      while (sampling) {
        samples.push(await liveness(client, keys));
        if (started.next) scrapes.push(await scrapeOf(started.next.url));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    onTestFinished(() => {
      sampling = false;
    });

    first.signal('SIGTERM');
    expect(await vi.waitFor(() => first.exited, { timeout: 20_000 })).toEqual({ code: 0, signal: null });
    const next = await startCollector(raw, { port: first.port, configPath: first.configPath });
    started.next = next;
    await vi.waitFor(
      async () => {
        const now = await liveness(client, keys);
        for (const h of now.hosts) {
          expect(h.owner).not.toBeNull();
          expect(h.owner).not.toBe(oldOwners.get(h.host));
        }
        const scrape = await scrapeOf(next.url);
        expect(scrape.value('rasmon_collector_agents_connected')).toBe(HOSTS.length);
        for (const host of HOSTS) expect(scrape.value('ras_host_connections', { farm: FARM, host })).toBe(truth[host]);
      },
      { timeout: 30_000, interval: 200 },
    );
    sampling = false;
    await sampler;

    expect(samples.length).toBeGreaterThan(0);
    expect(scrapes.length).toBeGreaterThan(0);
    for (const sample of samples) {
      for (const h of sample.hosts) {
        // Held all along: never released, never lapsed.
        expect(h.live, `${h.host} at ${sample.now}`).toBe('1');
        expect(h.lease, `${h.host} at ${sample.now}`).not.toBeNull();
        expect(h.lease!, `${h.host} at ${sample.now}`).toBeGreaterThan(sample.now);
      }
      expect(sample.unverified).toBe(0);
    }
    for (const scrape of scrapes) {
      for (const host of HOSTS) expect(hostUp(scrape, host)).toBe(1);
      expect(scrape.value('ras_license_users_unverified', { farm: FARM })).toBe(0);
      expect(scrape.value('ras_license_users', { farm: FARM })).toBe(users);
    }
    // The old connections were handed over, not taken from live ones: no supersede on either side.
    expect((await scrapeOf(next.url)).value('rasmon_collector_supersedes_total', { farm: FARM }) ?? 0).toBe(0);
  });

  it('with no agent back, the leases the drain kept lapse: hosts down, their users unverified', async () => {
    const client = redis.client();
    // A lease of 15 s: longer than the drain takes on a loaded machine (the draining collector's own
    // clock would otherwise lapse the leases it kept before the test reads them).
    const raw = rawConfig(redis.url, [{ id: FARM, seats: 10, token: TOKEN }], { heartbeatSeconds: 5 });
    const keys = new RedisKeys((raw.redis as { prefix: string }).prefix);
    const first = await startCollector(raw);
    const agents: TestAgent[] = [];
    for (const [i, host] of HOSTS.slice(0, 2).entries()) {
      const agent = await TestAgent.connect(first.url, TOKEN);
      onTestFinished(() => agent.socket.terminate());
      await agent.hello(FARM, host, `stream-${host}`);
      await agent.snapshot(1, [session('1', `corp\\user${i}`), session('2', 'corp\\shared')]);
      agents.push(agent);
    }
    const farmA = { farm: FARM };
    expect((await Scrape.from(first.url)).value('ras_license_users', farmA)).toBe(3);

    first.signal('SIGTERM');
    for (const agent of agents) expect((await vi.waitFor(() => agent.closed, { timeout: 20_000 })).code).toBe(1001);
    expect(await vi.waitFor(() => first.exited, { timeout: 20_000 })).toEqual({ code: 0, signal: null });
    // Handed over: still live in Redis, nobody left to renew them.
    const kept = await liveness(client, keys);
    const held = kept.hosts.filter((h) => h.lease !== null);
    expect(held.map((h) => h.host)).toEqual(['rdsh-1', 'rdsh-2']);
    expect(held.map((h) => h.live)).toEqual(['1', '1']);
    expect(kept.unverified).toBe(0);

    // No agent comes back. Once Redis's clock is past every lease, a collector starts.
    const lastLease = Math.max(...held.map((h) => h.lease!));
    await vi.waitFor(async () => expect(await redisNow(client)).toBeGreaterThan(lastLease), {
      timeout: 40_000,
      interval: 200,
    });
    const next = await startCollector(raw, { port: first.port, configPath: first.configPath });
    await vi.waitFor(
      async () => {
        const scrape = await Scrape.from(next.url);
        expect(scrape.value('ras_agent_up', { ...farmA, host: 'rdsh-1' })).toBe(0);
        expect(scrape.value('ras_agent_up', { ...farmA, host: 'rdsh-2' })).toBe(0);
        expect(scrape.value('ras_license_users_unverified', farmA)).toBe(3);
      },
      { timeout: 20_000, interval: 200 },
    );
    // RAS still counts the users of a host whose agent is gone (rule 10): stale, not gone.
    const scrape = await Scrape.from(next.url);
    expect(scrape.value('ras_license_users', farmA)).toBe(3);
    expect(await client.zscore(keys.farm(FARM).lease, 'rdsh-1')).toBeNull();
  });
});
