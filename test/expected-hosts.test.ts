/**
 * `farms[].expectedHosts`: a listed host with no live agent, never connected or gone, exports
 * `ras_agent_up` 0 from the start and `ras_host_expected` 1, and the API lists it with
 * `"expected": true`; names compare case-insensitively. Real collector, Redis and WebSocket agent.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { useRedis } from './support/use-redis.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, session } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';

interface HostEntry {
  host: string;
  up: boolean;
  expected: boolean;
  lastSeen: string | null;
  connections: number;
}

describe('expected hosts', () => {
  const redis = useRedis();
  let collector: InProcessCollector;
  let agent: TestAgent | undefined;

  beforeAll(async () => {
    collector = await InProcessCollector.start(
      rawConfig(redis.url, [
        { id: 'farm-a', seats: 10, expectedHosts: ['rdsh-1', 'RDSH-2', 'rdsh-2'] },
        { id: 'farm-b', seats: 10 },
      ]),
      { tickMs: 100 },
    );
  });

  afterAll(async () => {
    await agent?.close();
    await collector?.stop();
  });

  const hosts = async (farm: string) =>
    ((await (await fetch(`${collector.url}/api/v1/farms/${farm}`)).json()) as { hosts: HostEntry[] }).hosts;

  it('exports a listed host that never connected as down and expected, once, in lower case', async () => {
    const scrape = await Scrape.from(collector.url);
    expect(scrape.all('ras_agent_up', { farm: 'farm-a' }).map((s) => [s.labels.host, s.value])).toEqual([
      ['rdsh-1', 0],
      ['rdsh-2', 0],
    ]);
    expect(scrape.all('ras_host_expected', { farm: 'farm-a' }).map((s) => [s.labels.host, s.value])).toEqual([
      ['rdsh-1', 1],
      ['rdsh-2', 1],
    ]);
    expect(scrape.value('ras_host_connections', { farm: 'farm-a', host: 'rdsh-2' })).toBe(0);
    // A farm without expectedHosts has no host series before an agent connects.
    expect(scrape.all('ras_agent_up', { farm: 'farm-b' })).toEqual([]);
    expect(await hosts('farm-a')).toEqual([
      {
        host: 'rdsh-1',
        up: false,
        retired: false,
        lastSeen: null,
        connections: 0,
        agent: null,
        expected: true,
        source: null,
        sourceError: null,
      },
      {
        host: 'rdsh-2',
        up: false,
        retired: false,
        lastSeen: null,
        connections: 0,
        agent: null,
        expected: true,
        source: null,
        sourceError: null,
      },
    ]);
  });

  it('counts expected hosts that never reported apart from stale ones in the farm summary', async () => {
    const summary = async () =>
      (
        (await (await fetch(`${collector.url}/api/v1/farms`)).json()) as {
          farms: { id: string; hostsUp: number; hostsStale: number; hostsExpected: number }[];
        }
      ).farms.find((farm) => farm.id === 'farm-a');
    expect(await summary()).toMatchObject({ hostsUp: 0, hostsStale: 0, hostsExpected: 2 });
  });

  it('shows an expected host up once its agent connects, and unlisted hosts as not expected', async () => {
    agent = await TestAgent.connect(collector.url, 'token-farm-a');
    await agent.hello('farm-a', 'RDSH-1', 'stream-1');
    await agent.snapshot(1, [session('1', 'corp\\alice')]);
    const other = await TestAgent.connect(collector.url, 'token-farm-a');
    await other.hello('farm-a', 'rdsh-7', 'stream-7');
    await other.snapshot(1, []);
    await other.close();
    await vi.waitFor(
      async () => {
        const scrape = await Scrape.from(collector.url);
        expect(scrape.value('ras_agent_up', { farm: 'farm-a', host: 'rdsh-1' })).toBe(1);
        expect(scrape.value('ras_agent_up', { farm: 'farm-a', host: 'rdsh-7' })).toBe(0);
      },
      { timeout: 10_000 },
    );
    const scrape = await Scrape.from(collector.url);
    expect(scrape.value('ras_agent_up', { farm: 'farm-a', host: 'rdsh-2' })).toBe(0);
    expect(scrape.all('ras_host_expected', { farm: 'farm-a' }).map((s) => s.labels.host)).toEqual(['rdsh-1', 'rdsh-2']);
    const listed = await hosts('farm-a');
    expect(listed.map((h) => [h.host, h.up, h.expected, h.connections])).toEqual(
      expect.arrayContaining([
        ['rdsh-1', true, true, 1],
        ['rdsh-2', false, true, 0],
        ['rdsh-7', false, false, 0],
      ]),
    );
    expect(listed).toHaveLength(3);
    expect(listed.find((h) => h.host === 'rdsh-1')!.lastSeen).not.toBeNull();
  });
});
