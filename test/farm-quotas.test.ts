/**
 * A farm's quotas (docs/design.md §6, "One farm against the others") against the real collector bin
 * and a private Redis: a leaked token's made-up host cannot fill the farm past `maxSessions`, nor
 * bring made-up users faster than `maxNewUsersPerMinute`; what it is refused is counted, the farm's
 * real users keep what they hold, and other farms never notice. Each test's steps take seconds, well
 * within the quota's one-minute window.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { useRedis } from './support/use-redis.js';
import { CollectorProcess, rawConfig } from './support/collector-harness.js';
import { TestAgent, end, session, upsert } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';

const redis = useRedis();

async function collector(farms: Parameters<typeof rawConfig>[1]) {
  const raw = rawConfig(redis.url, farms);
  const proc = await CollectorProcess.start(raw);
  onTestFinished(() => proc.stop());
  return Object.assign(proc, { prefix: (raw.redis as { prefix: string }).prefix });
}

async function agent(url: string, farm: string, host: string): Promise<TestAgent> {
  const a = await TestAgent.connect(url, `token-${farm}`);
  onTestFinished(() => a.socket.terminate());
  await a.hello(farm, host);
  return a;
}

/** The farm's value of a metric, 0 when absent. */
async function value(url: string, name: string, labels: Record<string, string>): Promise<number> {
  return (await Scrape.from(url)).value(name, labels) ?? 0;
}

const refused = (url: string, farm: string, reason: 'sessions' | 'new_users') =>
  value(url, 'rasmon_collector_farm_quota_refused_total', { farm, reason });
const users = (url: string, farm: string) => value(url, 'ras_license_users', { farm });

const made = (count: number, prefix: string, user: (i: number) => string) =>
  Array.from({ length: count }, (_, i) => session(`${prefix}-${i}`, user(i)));

describe('sessions per farm', () => {
  it("a made-up host's snapshot that would take the farm above maxSessions is refused whole and counted; the farm's real users and the other farm are untouched", async () => {
    const c = await collector([
      { id: 'farm-a', seats: 10 },
      { id: 'farm-b', seats: 10 },
    ]);
    // Sized to the seats by default: max(1,000, 10 x 10) and max(500, 2 x 10).
    expect(await value(c.url, 'rasmon_collector_farm_max_sessions', { farm: 'farm-a' })).toBe(1000);
    expect(await value(c.url, 'rasmon_collector_farm_max_new_users_per_minute', { farm: 'farm-a' })).toBe(500);
    for (const farm of ['farm-a', 'farm-b'])
      for (const reason of ['sessions', 'new_users'] as const) expect(await refused(c.url, farm, reason)).toBe(0);

    const real = await agent(c.url, 'farm-a', 'rdsh-1');
    expect(
      (
        await real.snapshot(
          1,
          made(6, 'r', (i) => `corp\\real-${i}`),
        )
      ).rejected,
    ).toBeUndefined();
    const other = await agent(c.url, 'farm-b', 'rdsh-1');
    await other.snapshot(
      1,
      made(3, 'b', (i) => `corp\\b-${i}`),
    );

    const fake = await agent(c.url, 'farm-a', 'made-up-1');
    const ack = await fake.snapshot(
      1,
      made(1000, 'f', (i) => `corp\\made-up-${i}`),
    );
    // The stream goes on (its seq counts as applied); nothing of the snapshot is.
    expect(ack).toEqual({
      type: 'ack',
      seq: 1,
      rejected: [{ seq: 1, reason: 'farm farm-a holds its maximum of 1000 sessions (maxSessions)' }],
    });
    const scrape = await Scrape.from(c.url);
    expect(scrape.value('rasmon_collector_farm_quota_refused_total', { farm: 'farm-a', reason: 'sessions' })).toBe(
      1000,
    );
    expect(scrape.value('rasmon_collector_farm_quota_refused_total', { farm: 'farm-a', reason: 'new_users' })).toBe(0);
    expect(scrape.value('ras_license_users', { farm: 'farm-a' })).toBe(6);
    expect(scrape.value('ras_license_peak_users', { farm: 'farm-a' })).toBe(6);
    expect(scrape.value('ras_host_connections', { farm: 'farm-a', host: 'made-up-1' }) ?? 0).toBe(0);
    expect(scrape.value('ras_host_connections', { farm: 'farm-a', host: 'rdsh-1' })).toBe(6);
    expect(scrape.value('ras_license_users', { farm: 'farm-b' })).toBe(3);

    // A snapshot that fits goes in: the farm at exactly its cap (6 real sessions, 994 of one made-up user).
    const fits = await fake.snapshot(
      2,
      made(994, 'g', () => 'corp\\made-up'),
    );
    expect(fits.rejected).toBeUndefined();
    await expect.poll(() => users(c.url, 'farm-a')).toBe(7);
    // At the cap, a new session is refused, event by event, with the seq still acked...
    const over = await fake.events([upsert(3, session('g-extra', 'corp\\made-up'))]);
    expect(over).toEqual({
      type: 'ack',
      seq: 3,
      rejected: [{ seq: 3, reason: 'farm farm-a holds its maximum of 1000 sessions (maxSessions)' }],
    });
    expect(await refused(c.url, 'farm-a', 'sessions')).toBe(1001);
    // ...while what the real host holds stays and changes: a logoff frees room for the next logon.
    const moved = await real.events([
      upsert(2, session('r-0', 'corp\\real-0', { state: 'disconnected', since: 1 })),
      end(3, 'r-1'),
      upsert(4, session('r-new', 'corp\\real-new')),
    ]);
    expect(moved).toEqual({ type: 'ack', seq: 4 });
    await expect.poll(() => users(c.url, 'farm-a')).toBe(7);
    expect(await value(c.url, 'ras_host_connections', { farm: 'farm-a', host: 'rdsh-1' })).toBe(6);

    // The other farm never met farm-a's cap.
    expect(
      (
        await other.snapshot(
          2,
          made(50, 'b', (i) => `corp\\b-${i}`),
        )
      ).rejected,
    ).toBeUndefined();
    await expect.poll(() => users(c.url, 'farm-b')).toBe(50);
    for (const reason of ['sessions', 'new_users'] as const) expect(await refused(c.url, 'farm-b', reason)).toBe(0);
  });
});

/** The n-th logon on host h of the Monday-morning storm below, the same whenever it is listed. */
const stormSession = (h: number, n: number) => session(`s${n}`, `corp\\user-${h}-${n}`, { since: 1_000 + n });
const adminSession = session('a1', 'corp\\admin', { admin: true, since: 1 });

describe('new users per minute', () => {
  it("a Monday-morning logon storm passes; a flood of made-up users meets maxNewUsersPerMinute, counted, and the farm's own users and the other farm go on", async () => {
    // Budget max(500, 2 x 250) = 500 users new to the farm in a rolling minute.
    const c = await collector([
      { id: 'farm-a', seats: 250 },
      { id: 'farm-b', seats: 10 },
    ]);
    expect(await value(c.url, 'rasmon_collector_farm_max_new_users_per_minute', { farm: 'farm-a' })).toBe(500);

    // Everyone logs on within the minute: 300 users (20 % over the seats) on five hosts, one event
    // each, in frames of ten as agents send them.
    const hosts = await Promise.all([1, 2, 3, 4, 5].map((n) => agent(c.url, 'farm-a', `rdsh-${n}`)));
    await Promise.all(
      hosts.map(async (host, h) => {
        await host.snapshot(1, []);
        for (let frame = 0; frame < 6; frame += 1) {
          const events = Array.from({ length: 10 }, (_, i) => {
            const n = frame * 10 + i;
            return upsert(2 + n, stormSession(h, n));
          });
          expect((await host.events(events)).rejected).toBeUndefined();
        }
      }),
    );
    // An administrator's desktop: exempt, so its user consumes nowhere, but new to the farm all the same.
    const [, , third] = hosts;
    expect((await third!.events([upsert(62, adminSession)])).rejected).toBeUndefined();
    await expect.poll(() => users(c.url, 'farm-a')).toBe(300);
    expect(await refused(c.url, 'farm-a', 'new_users')).toBe(0);
    // A user who logs off and on again within the minute is not new twice.
    const [first] = hosts;
    await first!.events([end(62, 's0')]);
    expect((await first!.events([upsert(63, session('s0-again', 'corp\\user-0-0'))])).rejected).toBeUndefined();

    // A made-up host floods: 400 users no one has seen. The 199 that fit the budget go in, the rest
    // are refused, each counted.
    const fake = await agent(c.url, 'farm-a', 'made-up-1');
    await fake.snapshot(1, []);
    const flood = await fake.events(
      Array.from({ length: 400 }, (_, i) => upsert(2 + i, session(`f${i}`, `corp\\made-up-${i}`))),
    );
    expect(flood.seq).toBe(401);
    expect(flood.rejected?.[0]).toEqual({
      seq: 201,
      reason: 'farm farm-a took its maximum of 500 new users in a minute (maxNewUsersPerMinute)',
    });
    expect(await refused(c.url, 'farm-a', 'new_users')).toBe(201);
    // A snapshot of more made-up users is refused whole, and counted for all it listed.
    const another = await agent(c.url, 'farm-a', 'made-up-2');
    const whole = await another.snapshot(
      1,
      made(50, 'm', (i) => `corp\\more-made-up-${i}`),
    );
    expect(whole.rejected).toEqual([
      { seq: 1, reason: 'farm farm-a took its maximum of 500 new users in a minute (maxNewUsersPerMinute)' },
    ]);
    expect(await refused(c.url, 'farm-a', 'new_users')).toBe(251);
    await expect.poll(() => users(c.url, 'farm-a')).toBe(499);
    expect(await refused(c.url, 'farm-a', 'sessions')).toBe(0);

    // The farm's own users are not new: a second session of a logged-on user still goes in.
    const [, second] = hosts;
    expect((await second!.events([upsert(62, session('s-second', 'corp\\user-0-5'))])).rejected).toBeUndefined();
    expect(await value(c.url, 'ras_host_connections', { farm: 'farm-a', host: 'rdsh-2' })).toBe(61);
    // A host's periodic snapshot lists what it holds: its users are not new, nor is the exempt admin,
    // who consumes nowhere, once its minute is over (its entry leaves the window, and a new made-up
    // user takes the room it left).
    const admin = redis.client();
    expect(await admin.zrem(`${c.prefix}:{farm-a}:newusers`, 'corp\\admin')).toBe(1);
    expect((await fake.events([upsert(402, session('f-last', 'corp\\made-up-last'))])).rejected).toBeUndefined();
    const again = [...Array.from({ length: 60 }, (_, n) => stormSession(2, n)), adminSession];
    expect((await third!.snapshot(63, again)).rejected).toBeUndefined();
    expect(await refused(c.url, 'farm-a', 'new_users')).toBe(251);

    // The other farm takes its new users as ever.
    const other = await agent(c.url, 'farm-b', 'rdsh-1');
    expect(
      (
        await other.snapshot(
          1,
          made(40, 'b', (i) => `corp\\b-${i}`),
        )
      ).rejected,
    ).toBeUndefined();
    await expect.poll(() => users(c.url, 'farm-b')).toBe(40);
    for (const reason of ['sessions', 'new_users'] as const) expect(await refused(c.url, 'farm-b', reason)).toBe(0);
  });
});

describe('a snapshot refused whole', () => {
  it('still ends the sessions it no longer lists: what a host held and lost is not counted on while its farm stays over a quota', async () => {
    const c = await collector([{ id: 'farm-a', seats: 10, maxNewUsersPerMinute: 20 }]);
    const host = await agent(c.url, 'farm-a', 'rdsh-1');
    const held = [session('1', 'corp\\alice'), session('2', 'corp\\bob'), session('3', 'corp\\carol')];
    expect((await host.snapshot(1, held)).rejected).toBeUndefined();
    await expect.poll(() => users(c.url, 'farm-a')).toBe(3);
    // Alice and carol logged off; bob stays, and 30 users new to the farm came: more than the
    // minute has room for, so the snapshot is refused whole.
    const next = [held[1]!, ...made(30, 'n', (i) => `corp\\new-${i}`)];
    const ack = await host.snapshot(2, next);
    expect(ack.rejected).toEqual([
      { seq: 2, reason: 'farm farm-a took its maximum of 20 new users in a minute (maxNewUsersPerMinute)' },
    ]);
    expect(await refused(c.url, 'farm-a', 'new_users')).toBe(31);
    // Nothing of it came in, but the two it no longer lists ended: bob alone is counted.
    await expect.poll(() => users(c.url, 'farm-a')).toBe(1);
    expect(await value(c.url, 'ras_host_connections', { farm: 'farm-a', host: 'rdsh-1' })).toBe(1);
  });
});
