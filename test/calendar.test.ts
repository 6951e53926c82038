/**
 * The calendar: the product across midnight, on a shifted wall clock. redis-server (whose `TIME` is the
 * rules' clock, docs/design.md §2 rule 11) and the collector's bin both run on one clock that starts at
 * 23:59:40 UTC before a year's end and before a leap day (test/support/fake-clock.c), with real agents
 * over WebSocket; the test waits for midnight to pass and reads what /metrics, the API and the report
 * command say on either side of it.
 *
 * Across 31 December → 1 January: today's peak resets, yesterday's record lands in the history with its
 * peak, admissions and time over the seats, the month and year reports split at midnight, the overuse
 * grace keeps counting (and one that runs out at midnight is exhausted then), a primary license that
 * expires at midnight enters its 30-day grace exactly then and a sublicense expires, and the oldest day
 * leaves the history at the documented age. Across 28 → 29 February 2028: the leap day is a day of its
 * own in the history and the month's report.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Redis } from 'ioredis';
import { RedisServer } from './support/redis-server.js';
import { COLLECTOR_BIN, CollectorProcess, rawConfig } from './support/collector-harness.js';
import { TestAgent, end, session } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';
import { ShiftedClock } from './support/fake-clock.js';
import { DAY_MS, dayNumber, dayText } from './support/calendar.js';

const run = promisify(execFile);

/** Days a daily record is kept (collector/src/engine/lua/includes/farm-record.lua, docs/design.md §2 rule 7). */
const HISTORY_DAYS = 450;

interface Lab {
  clock: ShiftedClock;
  redis: RedisServer;
  client: Redis;
  collector: CollectorProcess;
  raw: Record<string, unknown>;
  prefix: string;
  agents: TestAgent[];
}

let lab: Lab | undefined;
afterEach(async () => {
  if (!lab) return;
  await Promise.all(lab.agents.map((agent) => agent.close()));
  lab.client.disconnect();
  await lab.collector.stop();
  await lab.redis.stop();
  lab = undefined;
});

/** redis-server and the collector on one clock that reads `startAt` now. */
async function shiftedLab(startAt: string, farms: Parameters<typeof rawConfig>[1]): Promise<Lab> {
  const clock = new ShiftedClock(Date.parse(startAt));
  const redis = await RedisServer.start({ env: clock.env() });
  const client = redis.client();
  // A run is only worth its name if Redis really reads the shifted time.
  const [seconds] = await client.time();
  expect(Math.abs(Number(seconds) * 1000 - clock.now())).toBeLessThan(5_000);
  const raw = rawConfig(redis.url, farms, { heartbeatSeconds: 5 });
  const collector = await CollectorProcess.start(raw, { env: clock.env(), logLevel: 'warn' });
  lab = { clock, redis, client, collector, raw, prefix: (raw.redis as { prefix: string }).prefix, agents: [] };
  return lab;
}

async function agent(lab: Lab, farm: string, host: string): Promise<TestAgent> {
  const a = await TestAgent.connect(lab.collector.url, `token-${farm}`);
  lab.agents.push(a);
  await a.hello(farm, host, `stream-${host}`);
  return a;
}

/** Redis's clock, in milliseconds. */
async function redisNow(client: Redis): Promise<number> {
  const [seconds, micros] = await client.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/** Waits (on the shifted clock) until `atMs` has passed by `afterMs`. */
async function waitPast(clock: ShiftedClock, atMs: number, afterMs: number): Promise<void> {
  const left = atMs + afterMs - clock.now();
  if (left > 0) await sleep(left);
}

/** Fails the run plainly when setting up took so long that midnight is too close to observe before it. */
function expectBefore(clock: ShiftedClock, midnight: number, marginMs: number): void {
  const left = midnight - clock.now();
  if (left < marginMs) throw new Error(`setting up took until ${left} ms before midnight; need ${marginMs} ms`);
}

async function json(lab: Lab, path: string): Promise<any> {
  const res = await fetch(`${lab.collector.url}${path}`);
  expect(res.status).toBe(200);
  return res.json();
}

/** `rasmon-collector report` on the lab's clock, as a monthly cron job would run it. */
async function reportCommand(lab: Lab, args: string[]): Promise<any> {
  const file = join(mkdtempSync(join(tmpdir(), 'rasmon-calendar-')), 'collector.json');
  writeFileSync(file, JSON.stringify(lab.raw));
  const { stdout } = await run(
    process.execPath,
    [COLLECTOR_BIN, 'report', '--config', file, '--format', 'json', ...args],
    {
      env: lab.clock.env(),
    },
  );
  return JSON.parse(stdout);
}

const farmOf = (report: any, farm: string) => report.farms.find((row: any) => row.farm === farm);

describe('calendar: the product across midnight on a shifted clock', () => {
  it('31 December 23:59:40 → 1 January: peaks, day records, month and year reports, both graces, expiry and the history window', async () => {
    const midnight = Date.parse('2028-01-01T00:00:00Z');
    const lastDay = dayNumber(midnight) - 1;
    const lab = await shiftedLab('2027-12-31T23:59:40Z', [
      { id: 'farm-over', seats: 2, licenseKey: 'key-1' },
      { id: 'farm-ending', seats: 10, license: 'primary', expires: '2028-01-01T00:00:00Z' },
      { id: 'farm-sub', seats: 10, license: 'sublicense', expires: '2028-01-01T00:00:00Z' },
      // An overuse grace the console shows as started seven days before midnight runs out at midnight.
      { id: 'farm-grace', seats: 1, overuseGraceStartedAt: new Date(midnight - 7 * DAY_MS).toISOString() },
    ]);
    const { clock, client, collector, prefix } = lab;

    // The history as 450 days of the collector running would have left it: the oldest is 450 days old.
    const peaks = `${prefix}:{farm-over}:peaks`;
    const seeded: Record<string, string> = {};
    for (let day = lastDay - HISTORY_DAYS; day < lastDay; day += 1) seeded[String(day)] = '1';
    await client.hset(peaks, seeded);

    // farm-over: 4 users on 2 seats (two admissions), then one leaves: 3 users, 1 over, at midnight.
    const over = await agent(lab, 'farm-over', 'rdsh-1');
    const overFrom = await redisNow(client);
    await over.snapshot(
      1,
      ['a', 'b', 'c', 'd'].map((user, i) => session(String(i), `corp\\${user}`)),
    );
    const overTo = await redisNow(client);
    await over.events([end(2, '3')]);
    const grace = await agent(lab, 'farm-grace', 'rdsh-1');
    await grace.snapshot(1, [session('1', 'corp\\a'), session('2', 'corp\\b')]);
    expectBefore(clock, midnight, 5_000);

    const before = await Scrape.from(collector.url);
    expect(before.value('ras_license_users', { farm: 'farm-over' })).toBe(3);
    expect(before.value('ras_license_peak_users_today', { farm: 'farm-over' })).toBe(4);
    const graceStart = before.value('ras_license_overuse_grace_start_timestamp_seconds', { farm: 'farm-over' })!;
    expect(graceStart * 1000).toBeGreaterThanOrEqual(Math.floor(overFrom / 1000) * 1000);
    expect(graceStart * 1000).toBeLessThanOrEqual(overTo);
    expect(before.value('ras_license_overuse_grace_exhausted', { farm: 'farm-grace' })).toBe(0);
    expect(before.value('ras_license_deactivation_risk', { farm: 'farm-grace' })).toBe(0);
    expect(await client.hexists(peaks, String(lastDay - HISTORY_DAYS))).toBe(1);

    // Around midnight: every API read made wholly before it says active, every one wholly after says
    // grace (primary) and expired (sublicense): the states change at the instant, not a tick later.
    await waitPast(clock, midnight, -3_000);
    const seen = { before: 0, after: 0 };
    while (clock.now() < midnight + 3_000) {
      const from = await redisNow(client);
      const { farms } = await json(lab, '/api/v1/farms');
      const to = await redisNow(client);
      const state = (id: string) => farms.find((farm: any) => farm.id === id).state;
      if (to < midnight) {
        seen.before += 1;
        expect([state('farm-ending'), state('farm-sub')]).toEqual(['active', 'active']);
      } else if (from >= midnight) {
        seen.after += 1;
        expect([state('farm-ending'), state('farm-sub')]).toEqual(['grace', 'expired']);
      }
      await sleep(100);
    }
    expect(seen.before).toBeGreaterThan(0);
    expect(seen.after).toBeGreaterThan(0);

    // The farm's clock closes the day within a few seconds of midnight (rule 11), without a frame.
    const closed = await vi.waitFor(
      async () => {
        const record = await client.hget(peaks, String(lastDay));
        expect(record).toContain(',');
        return record!;
      },
      { timeout: 10_000, interval: 200 },
    );
    // /metrics reads a farm again once its last read is a second old.
    await sleep(1_100);
    const after = await Scrape.from(collector.url);
    const state = (farm: string) =>
      ['active', 'grace', 'expired'].find((s) => after.value('ras_license_state', { farm, state: s }) === 1);
    expect([state('farm-ending'), state('farm-sub')]).toEqual(['grace', 'expired']);

    // Today's peak starts again from the users there at midnight; the all-time peak stays.
    expect(after.value('ras_license_peak_users_today', { farm: 'farm-over' })).toBe(3);
    expect(after.value('ras_license_peak_users', { farm: 'farm-over' })).toBe(4);
    expect(after.value('ras_license_overuse_users', { farm: 'farm-over' })).toBe(1);
    // The overuse grace keeps counting from its start: midnight neither restarts nor ends it.
    expect(after.value('ras_license_overuse_grace_start_timestamp_seconds', { farm: 'farm-over' })).toBe(graceStart);
    expect(after.value('ras_license_overuse_grace_end_timestamp_seconds', { farm: 'farm-over' })).toBe(
      graceStart + 7 * 86_400,
    );
    expect(after.value('ras_license_overuse_grace_exhausted', { farm: 'farm-over' })).toBe(0);
    // The grace that started seven days before midnight ran out at midnight: the overuse is now a risk.
    expect(after.value('ras_license_overuse_grace_exhausted', { farm: 'farm-grace' })).toBe(1);
    expect(after.value('ras_license_deactivation_risk', { farm: 'farm-grace' })).toBe(1);
    // A primary license's 30-day grace runs from its expiry; a sublicense has none.
    expect(after.value('ras_license_grace_end_timestamp_seconds', { farm: 'farm-ending' })).toBe(
      midnight / 1000 + 30 * 86_400,
    );
    expect(after.value('ras_license_grace_end_timestamp_seconds', { farm: 'farm-sub' })).toBe(midnight / 1000);

    // Yesterday's record: its peak and when, the seats, the highest overuse, the admissions, and the time
    // over the seats counted up to midnight (in tenths of a minute).
    const [peakUsers, peakAt, seats, maxOveruse, admissions, msOver] = closed.split(',').map(Number);
    expect({ peakUsers, seats, maxOveruse, admissions }).toEqual({
      peakUsers: 4,
      seats: 2,
      maxOveruse: 2,
      admissions: 2,
    });
    expect(peakAt).toBeGreaterThanOrEqual(overFrom);
    expect(peakAt).toBeLessThanOrEqual(overTo);
    expect(msOver).toBeGreaterThanOrEqual(midnight - overTo);
    expect(msOver).toBeLessThanOrEqual(midnight - overFrom);
    const history = await json(lab, '/api/v1/farms/farm-over/history?from=2027-12-31&to=2028-01-01');
    expect(history.days.map((day: any) => day.day)).toEqual(['2027-12-31', '2028-01-01']);
    expect(history.days[0]).toMatchObject({ peakUsers: 4, seats: 2, maxOveruse: 2, admissions: 2 });
    expect(Math.abs(history.days[0].minutesOverSeats - msOver! / 60_000)).toBeLessThanOrEqual(0.05 + 1e-9);
    // The new day holds the users still there and the overuse carried over midnight, with no admission.
    expect(history.days[1]).toMatchObject({ peakUsers: 3, seats: 2, maxOveruse: 1, admissions: 0 });

    // The history keeps 450 days: the day that became 451 days old at midnight left it, the next stayed.
    expect(await client.hexists(peaks, String(lastDay - HISTORY_DAYS))).toBe(0);
    expect(await client.hexists(peaks, String(lastDay - HISTORY_DAYS + 1))).toBe(1);
    expect(dayText(lastDay - HISTORY_DAYS + 1)).toBe('2026-10-08');

    // Reports split at midnight: December and 2027 hold the peak and the admissions; January and 2028
    // begin with the users carried over.
    const december = await json(lab, '/api/v1/report?from=2027-12-01&to=2027-12-31');
    expect(farmOf(december, 'farm-over')).toMatchObject({ peakUsers: 4, peakDay: '2027-12-31', admissions: 2 });
    const january = await json(lab, '/api/v1/report?from=2028-01-01&to=2028-01-31');
    expect(farmOf(january, 'farm-over')).toMatchObject({ peakUsers: 3, peakDay: '2028-01-01', admissions: 0 });
    const year2027 = await json(lab, '/api/v1/report?from=2027-01-01&to=2027-12-31');
    expect(farmOf(year2027, 'farm-over')).toMatchObject({ peakUsers: 4, admissions: 2, daysRecorded: 365 });
    const year2028 = await json(lab, '/api/v1/report?from=2028-01-01&to=2028-12-31');
    expect(farmOf(year2028, 'farm-over')).toMatchObject({ peakUsers: 3, admissions: 0, daysRecorded: 1 });
    // With no period given, the API and the monthly command both report the month that just ended.
    const lastMonth = await json(lab, '/api/v1/report');
    expect([lastMonth.from, lastMonth.to]).toEqual(['2027-12-01', '2027-12-31']);
    const command = await reportCommand(lab, []);
    expect([command.from, command.to]).toEqual(['2027-12-01', '2027-12-31']);
    expect(farmOf(command, 'farm-over')).toMatchObject({ peakUsers: 4, admissions: 2 });
  }, 120_000);

  it('28 February 23:59:40 → 29 February 2028: the leap day is a day of its own', async () => {
    const midnight = Date.parse('2028-02-29T00:00:00Z');
    const lab = await shiftedLab('2028-02-28T23:59:40Z', [{ id: 'farm-a', seats: 1 }]);
    const { clock, client, prefix } = lab;
    const a = await agent(lab, 'farm-a', 'rdsh-1');
    await a.snapshot(1, [session('1', 'corp\\a'), session('2', 'corp\\b'), session('3', 'corp\\c')]);
    await a.events([end(2, '3')]);
    expectBefore(clock, midnight, 3_000);

    await waitPast(clock, midnight, 0);
    const peaks = `${prefix}:{farm-a}:peaks`;
    await vi.waitFor(async () => expect(await client.hget(peaks, String(dayNumber(midnight) - 1))).toContain(','), {
      timeout: 10_000,
      interval: 200,
    });
    const history = await json(lab, '/api/v1/farms/farm-a/history?from=2028-02-28&to=2028-03-01');
    expect(history.days.map((day: any) => day.day)).toEqual(['2028-02-28', '2028-02-29']);
    expect(history.days[0]).toMatchObject({ peakUsers: 3, maxOveruse: 2, admissions: 2 });
    expect(history.days[1]).toMatchObject({ peakUsers: 2, maxOveruse: 1, admissions: 0 });
    expect((await json(lab, '/api/v1/farms/farm-a/peaks')).peaks).toEqual([
      { day: '2028-02-28', users: 3 },
      { day: '2028-02-29', users: 2 },
    ]);
    const february = await json(lab, '/api/v1/report?from=2028-02-01&to=2028-02-29');
    expect(farmOf(february, 'farm-a')).toMatchObject({ peakUsers: 3, peakDay: '2028-02-28', daysRecorded: 2 });
    const leapDay = await reportCommand(lab, ['--from', '2028-02-29', '--to', '2028-02-29']);
    expect(farmOf(leapDay, 'farm-a')).toMatchObject({ peakUsers: 2, peakDay: '2028-02-29', admissions: 0 });
  }, 120_000);
});
