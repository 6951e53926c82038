/**
 * Redis Cluster: every key of a farm carries the hash tag `{farm}`, so each farm's Lua runs on one
 * shard; farms spread over shards are read per shard for /metrics and the API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { RedisCluster } from './support/redis-server.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, end, session, upsert } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';

let cluster: RedisCluster;
beforeAll(async () => {
  cluster = await RedisCluster.start(3);
});
afterAll(async () => {
  await cluster?.stop();
});

describe('Redis Cluster', () => {
  it('applies and reads farms whose keys live on different shards', async () => {
    const farms = ['farm-a', 'farm-b', 'farm-c', 'farm-d', 'farm-e', 'farm-f'];
    const raw = rawConfig(
      'redis://127.0.0.1:1',
      farms.map((id, i) => ({ id, seats: i + 1 })),
    );
    raw.redis = { cluster: { nodes: cluster.addresses }, prefix: 'cl' };
    const collector = await InProcessCollector.start(raw);
    const admin = new Cluster(
      cluster.addresses.map((address) => ({ host: '127.0.0.1', port: Number(address.split(':')[1]) })),
    );
    try {
      // The farms' keys really are spread over more than one shard.
      const slots = new Set(await Promise.all(farms.map((id) => admin.cluster('KEYSLOT', `cl:{${id}}:meta`))));
      expect(slots.size).toBeGreaterThan(1);

      for (const [i, id] of farms.entries()) {
        const agent = await TestAgent.connect(collector.url, `token-${id}`);
        await agent.hello(id, 'rdsh-1');
        const sessions = Array.from({ length: i + 2 }, (_, n) => session(String(n), `corp\\u${n}`));
        await agent.snapshot(1, sessions);
        const ack = await agent.events([upsert(2, session('x', 'corp\\extra')), end(3, '0')]);
        expect(ack.seq).toBe(3);
        await agent.close();
      }
      const scrape = await Scrape.from(collector.url);
      for (const [i, id] of farms.entries()) {
        // i + 2 users, one more, one less.
        expect(scrape.value('ras_license_users', { farm: id })).toBe(i + 2);
        expect(scrape.value('ras_license_overuse_users', { farm: id })).toBe(1);
        expect(scrape.value('ras_license_overuse_admissions_total', { farm: id })).toBe(2);
      }
      const detail = (await (await fetch(`${collector.url}/api/v1/farms/farm-f`)).json()) as any;
      expect(detail.connections).toHaveLength(7);
      expect(detail.overLimit).toEqual(['corp\\extra']);
    } finally {
      admin.disconnect();
      await collector.stop();
    }
  });
});
