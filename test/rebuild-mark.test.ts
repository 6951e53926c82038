/**
 * A farm clock round that finds a lost farm's epoch gone stores the fresh epoch and marks the farm
 * rebuilding in one script (tick.lua): a read between it and the marks of the hosts asked to resend
 * (a Redis round trip or more later, seconds under load) sees the farm rebuilding, not empty.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { parseConfig, RedisKeys } from '@rasmon/collector';
import { FarmReader } from '../collector/dist/engine/farm-reader.js';
import { FarmSeries } from '../collector/dist/metrics/farm-series.js';
import { UNMARKED_REBUILD_MS } from '../collector/dist/engine/license-engine.js';
import { scriptCalls } from '../collector/dist/engine/script-args.js';
import { defineScripts, runScript } from '../collector/dist/engine/scripts.js';
import { rawConfig } from './support/collector-harness.js';
import { useRedis } from './support/use-redis.js';

const DAY_MS = 86_400_000;
const rules = { id: 'farm-a', seats: 8, countDisconnected: true };

const server = useRedis();
let redis: Redis;
beforeAll(() => {
  redis = server.client();
  defineScripts(redis);
});

function tick(keys: RedisKeys, knownEpoch: string | undefined, fresh: string) {
  return runScript(
    redis,
    scriptCalls.tick(keys, rules, fresh, DAY_MS, 30 * DAY_MS, { knownEpoch, unmarkedMs: UNMARKED_REBUILD_MS }),
  ) as Promise<[string, string[], string[]]>;
}

async function redisNow(): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

describe('a lost farm marked rebuilding with its new epoch', () => {
  it('marks a farm whose known epoch is gone, in the script that stores the new one, and not a new farm', async () => {
    const keys = new RedisKeys(`mark-${Date.now()}`);
    const farms = parseConfig(rawConfig(server.url, [{ id: 'farm-a', seats: 8 }]), 'test').farms;
    const reader = new FarmReader(redis, keys);
    const rebuilding = keys.rebuilding('farm-a');

    // A farm this collector never read: new, not lost.
    expect((await tick(keys, undefined, 'epoch-1'))[0]).toBe('epoch-1');
    expect(await redis.zcard(rebuilding)).toBe(0);
    const first = (await reader.read(farms)).farms[0]!;
    expect(first).toMatchObject({ rebuilding: false, rebuildingHosts: 0 });

    // The epoch is there: nothing is marked, whatever this collector knew.
    expect((await tick(keys, 'epoch-1', 'epoch-x'))[0]).toBe('epoch-1');
    expect(await redis.zcard(rebuilding)).toBe(0);

    // Redis lost the farm's data.
    await redis.del(keys.farm('farm-a').epoch);
    const before = await redisNow();
    expect((await tick(keys, 'epoch-1', 'epoch-2'))[0]).toBe('epoch-2');
    const marks = await redis.zrange(rebuilding, '0', '-1', 'WITHSCORES');
    expect(marks[0]).toBe('');
    expect(Number(marks[1]) - before).toBeGreaterThan(0);
    expect(Number(marks[1]) - before).toBeLessThanOrEqual(UNMARKED_REBUILD_MS + 1000);
    expect(await redis.pttl(rebuilding)).toBeGreaterThan(0);

    // Read twice, as consecutive scrapes would, before any host is marked: rebuilding both times,
    // with no host counted as owing its state.
    for (let i = 0; i < 2; i += 1) {
      expect((await reader.read(farms)).farms[0]).toMatchObject({ rebuilding: true, rebuildingHosts: 0, users: 0 });
    }
    // The hosts' marks, when the collector writes them, are counted as hosts.
    await redis.zadd(rebuilding, (await redisNow()) + 60_000, 'rdsh-1');
    expect((await reader.read(farms)).farms[0]).toMatchObject({ rebuilding: true, rebuildingHosts: 1 });
    // The marks go (the farm's own as it lapses, the host's as it resends): the very next read
    // shows the farm, not withheld once more as if it had only now found the new epoch, which it
    // first read while marks were there.
    await redis.zrem(rebuilding, '', 'rdsh-1');
    expect((await reader.read(farms)).farms[0]).toMatchObject({ rebuilding: false, rebuildingHosts: 0 });
  });

  it('shows a farm at the first scrape after its last mark went, though its version did not move', async () => {
    const keys = new RedisKeys(`series-${Date.now()}`);
    const farms = parseConfig(rawConfig(server.url, [{ id: 'farm-a', seats: 8 }]), 'test').farms;
    const series = new FarmSeries(new FarmReader(redis, keys));
    const rebuilding = keys.rebuilding('farm-a');
    await tick(keys, undefined, 'epoch-1');
    await redis.zadd(rebuilding, (await redisNow()) + 60_000, 'rdsh-1');
    expect((await series.render(farms)).toString()).toContain('ras_farm_rebuilding{farm="farm-a"} 1\n');
    // Within the second a farm read is otherwise kept while its version stands still.
    await redis.zrem(rebuilding, 'rdsh-1');
    const body = (await series.render(farms)).toString();
    expect(body).toContain('ras_farm_rebuilding{farm="farm-a"} 0\n');
    expect(body).toContain('ras_license_users{farm="farm-a"} 0\n');
  });
});
