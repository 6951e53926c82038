/**
 * Heartbeats and host ownership at scale: leases are renewed once per interval for every agent,
 * spread over the interval rather than all at once; a hello supersedes exactly the older
 * connections of its own host.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { useRedis } from './support/use-redis.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent } from './support/agent-client.js';

const redis = useRedis();

async function collector(heartbeatSeconds: number): Promise<InProcessCollector> {
  const c = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats: 100 }], { heartbeatSeconds }));
  onTestFinished(() => c.stop());
  return c;
}

async function agent(url: string, host: string): Promise<TestAgent> {
  const a = await TestAgent.connect(url, 'token-farm-a');
  onTestFinished(async () => void (await a.close()));
  await a.hello('farm-a', host, `stream-${host}`);
  return a;
}

describe('heartbeats', () => {
  it('renews every host once per interval, at times spread over the interval', async () => {
    const c = await collector(1);
    const hosts = Array.from({ length: 10 }, (_, i) => `rdsh-${i}`);
    for (const host of hosts) await agent(c.url, host);
    const client = redis.client();
    onTestFinished(() => void client.disconnect());
    const seenKey = `${c.config.redis.prefix}:{farm-a}:seen`;
    await sleep(2500);
    const [time] = await client.time();
    const now = Number(time) * 1000;
    const seen = await client.zrange(seenKey, '0', '-1', 'WITHSCORES');
    const renewed = new Map<string, number>();
    for (let i = 0; i < seen.length; i += 2) renewed.set(seen[i]!, Number(seen[i + 1]));
    expect([...renewed.keys()].sort()).toEqual([...hosts].sort());
    const times = [...renewed.values()];
    // Each renewed within the last interval (plus slack for a loaded machine) …
    for (const at of times) expect(now - at).toBeLessThan(1500);
    // … and not in the same instant: ten connections fall in different steps of the interval.
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThanOrEqual(400);
  });
});

describe('supersede', () => {
  it('a hello supersedes the older connections of its host (any case) and no other', async () => {
    const c = await collector(15);
    const first = await agent(c.url, 'rdsh-1');
    const other = await agent(c.url, 'rdsh-2');
    const second = await agent(c.url, 'RDSH-1');
    expect(await first.closed).toMatchObject({ code: 1008 });
    expect(first.received.some((frame) => frame.type === 'error' && frame.code === 'superseded')).toBe(true);
    const third = await agent(c.url, 'Rdsh-1');
    expect(await second.closed).toMatchObject({ code: 1008 });
    // The survivors still work.
    expect(await third.snapshot(1, [])).toEqual({ type: 'ack', seq: 1 });
    expect(await other.snapshot(1, [])).toEqual({ type: 'ack', seq: 1 });
    expect(other.socket.readyState).toBe(other.socket.OPEN);
  });
});
