/**
 * The day-close rule exists once, in the scripts (includes/day-record.lua): the day still open is read
 * by it (openDay.lua), and the record the farm's tick writes when the day turns is the one the open
 * day read showed as of the day's end. Real Redis, the collector's real scripts; days are derived
 * from the Redis clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { RedisKeys } from '@rasmon/collector';
import { readOpenDay } from '../collector/dist/engine/license-engine.js';
import { scriptCalls } from '../collector/dist/engine/script-args.js';
import { defineScripts, runScript } from '../collector/dist/engine/scripts.js';
import { parseStoredDay } from '../collector/dist/report/day-records.js';
import { RedisServer } from './support/redis-server.js';

const DAY_MS = 86_400_000;
const rules = { id: 'farm-a', seats: 8, countDisconnected: true };

let server: RedisServer;
let redis: Redis;
beforeAll(async () => {
  server = await RedisServer.start();
  redis = server.client();
  defineScripts(redis);
});
afterAll(async () => {
  redis.disconnect();
  await server.stop();
});

async function redisNow(): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

describe('the day-close rule', () => {
  it('a farm with no day yet has no open day', async () => {
    const keys = new RedisKeys('empty');
    expect(await readOpenDay(redis, keys, rules, await redisNow())).toBeUndefined();
  });

  it('the open day runs its time over seats on to now, and reads its admissions from the day start', async () => {
    const keys = new RedisKeys('open');
    const now = await redisNow();
    const today = Math.floor(now / DAY_MS);
    await redis.hset(keys.farm('farm-a').meta, {
      day: today,
      peakToday: 9,
      peakAt: today * DAY_MS,
      daySeats: 8,
      overToday: 1,
      admissions: 10,
      admDay: 7,
      overMs: 60_000,
      overSince: now - 120_000,
    });
    const open = await readOpenDay(redis, keys, rules, now);
    expect(open).toEqual({ day: today, record: `9,${today * DAY_MS},8,1,3,180000` });
    expect(parseStoredDay(open!.day, open!.record)).toMatchObject({ peakUsers: 9, admissions: 3, minutesOverSeats: 3 });
  });

  it('the record the tick writes when the day turns is the open day as of its end', async () => {
    const keys = new RedisKeys('close');
    const now = await redisNow();
    // A day three days back that no script closed yet (no collector ran since), over seats at its end.
    const day = Math.floor(now / DAY_MS) - 3;
    const dayEnd = (day + 1) * DAY_MS;
    await redis.hset(keys.farm('farm-a').meta, {
      day,
      peakToday: 12,
      peakAt: day * DAY_MS + 3_600_000,
      daySeats: 8,
      overToday: 4,
      admissions: 25,
      admDay: 20,
      overMs: 600_000,
      overSince: dayEnd - 300_000,
    });
    const open = await readOpenDay(redis, keys, rules, now);
    expect(open).toEqual({ day, record: `12,${day * DAY_MS + 3_600_000},8,4,5,900000` });

    await runScript(redis, scriptCalls.tick(keys, rules, 'epoch', DAY_MS, 30 * DAY_MS));
    expect(await redis.hget(keys.farm('farm-a').peaks, String(day))).toBe(open!.record);
    const after = await redisNow();
    const next = await readOpenDay(redis, keys, rules, after);
    expect([Math.floor(now / DAY_MS), Math.floor(after / DAY_MS)]).toContain(next?.day);
  });
});
