/**
 * Big snapshots applied in slices (beginSnapshot.lua, then snapshotSlice.lua, docs/design.md §3):
 * the farm comes out as applyFrame.lua leaves it with the whole snapshot in one script; another
 * host's items may run between two slices; a slice for a host its connection no longer holds
 * writes nothing, and the next snapshot replaces what the slices before it applied; a snapshot
 * refused whole over a quota still ends what it no longer lists; one stopped part-way keeps the
 * users of the slices it applied in the month's distinct users. Through the engine, against a
 * real Redis. collector-model.property.test.ts holds slices of one and two items to the reference
 * model through the collector.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { ParsedEvent, Session } from '@rasmon/protocol';
import { parseConfig, RedisKeys } from '@rasmon/collector';
import { FarmDirectory } from '../collector/dist/config/farm-directory.js';
import { FarmReader } from '../collector/dist/engine/farm-reader.js';
import { LicenseEngine, type FarmEngine, type HostClaim } from '../collector/dist/engine/license-engine.js';
import { joinItems, packedSnapshot, scriptCalls, type PackedSnapshot } from '../collector/dist/engine/script-args.js';
import { defineScripts, runScript } from '../collector/dist/engine/scripts.js';
import { rawConfig } from './support/collector-harness.js';
import { session, upsert } from './support/agent-client.js';
import { useRedis } from './support/use-redis.js';

const DAY_MS = 86_400_000;
const LEASE_MS = 45_000;
const SETTINGS = { leaseMs: LEASE_MS, maxSessions: 2000, farmMaxSessions: 1000, maxNewUsersPerMinute: 500 };

const server = useRedis();
let redis: Redis;
beforeAll(() => {
  redis = server.client();
  defineScripts(redis);
});

let prefixes = 0;

/** A farm in a key space of its own, its snapshots applied in slices of `sliceItems`. */
async function farmWith(sliceItems: number, farm: Record<string, unknown> = {}, client: Redis = redis) {
  const keys = new RedisKeys(`slices-${process.pid}-${(prefixes += 1)}`);
  const farms = parseConfig(rawConfig(server.url, [{ id: 'farm-a', seats: 3, ...farm }]), 'test').farms;
  const directory = new FarmDirectory(farms);
  const license = new LicenseEngine(client, keys, () => directory, LEASE_MS, 2000, undefined, sliceItems);
  const engine = license.farm('farm-a')!;
  const { epoch } = await engine.tick(DAY_MS, 30 * DAY_MS);
  const reader = new FarmReader(redis, keys);
  const claim = async (host: string, owner = `${host}-owner`): Promise<HostClaim> => {
    const who = { host, owner, stream: `stream-${host}`, epoch };
    const hello = await engine.hello(who, 'test');
    expect(hello.kind).toBe('ok');
    return who;
  };
  const read = async () => {
    const state = (await reader.read(farms)).farms[0]!;
    return {
      users: state.users,
      exempt: state.exemptConnections,
      peak: state.peakUsers,
      admissions: state.overuseAdmissions,
      corrections: state.snapshotCorrections,
      unverified: state.unverifiedUsers,
      labels: Object.fromEntries(state.connectionsByLabels),
    };
  };
  const conns = (host: string) => redis.hgetall(keys.host('farm-a', host).conns);
  const rules = directory.rules('farm-a')!;
  /** beginSnapshot.lua for a snapshot of `sessions`, as the engine would call it. */
  const begin = async (who: HostClaim, seq: number, sessions: PackedSnapshot) =>
    (await runScript(redis, scriptCalls.beginSnapshot(keys, rules, who, SETTINGS, seq, sessions))) as unknown[];
  /** snapshotSlice.lua for the sessions from `from` up to `to` of an accepted snapshot. */
  const slice = async (who: HostClaim, seq: number, sessions: PackedSnapshot, from: number, to: number) =>
    (await runScript(
      redis,
      scriptCalls.snapshotSlice(keys, rules, who, LEASE_MS, {
        seq,
        part: 'sessions',
        items: joinItems(sessions.items, from, to),
        correcting: false,
        last: to === sessions.items.length,
        accepted: true,
      }),
    )) as unknown[];
  return { keys, engine, rules, claim, read, conns, begin, slice };
}

const admin = (id: string, user: string, since: number) => session(id, user, { admin: true, kind: 'desktop', since });

/** A host's sessions before and after its agent lost events: some end, some change, some are new. */
const before = [
  admin('a1', 'corp\\adm1', 1),
  admin('a2', 'corp\\adm2', 2),
  admin('a3', 'corp\\adm3', 3),
  session('1', 'corp\\alice'),
  session('2', 'corp\\bob'),
  session('3', 'corp\\carol', { state: 'disconnected' }),
];
const after = [
  admin('a2', 'corp\\adm2', 2),
  admin('a3', 'corp\\adm3', 3),
  session('2', 'corp\\bob', { state: 'disconnected' }),
  session('4', 'corp\\dave'),
  session('5', 'corp\\erin'),
  session('6', 'corp\\alice'),
  session('7', 'corp\\frank'),
];

async function sequence(farm: Awaited<ReturnType<typeof farmWith>>, engine: FarmEngine) {
  const one = await farm.claim('rdsh-1');
  const two = await farm.claim('rdsh-2');
  const results = [];
  results.push(await engine.applySnapshot(one, 1, before));
  results.push(await engine.applySnapshot(two, 1, [session('1', 'corp\\alice'), session('2', 'corp\\gina')]));
  results.push(await engine.applySnapshot(one, 2, after));
  // A duplicate of the last snapshot changes nothing.
  results.push(await engine.applySnapshot(one, 2, after));
  return results.map(({ kind, ...rest }) => ({ kind, ...('scriptMs' in rest ? { ...rest, scriptMs: 0 } : rest) }));
}

describe('a big snapshot in slices', () => {
  it('leaves the farm, the host and the answers as the whole snapshot in one script does', async () => {
    const whole = await farmWith(1000);
    const sliced = await farmWith(2);
    const wholeResults = await sequence(whole, whole.engine);
    const slicedResults = await sequence(sliced, sliced.engine);
    expect(slicedResults).toEqual(wholeResults);
    expect(wholeResults.map((r) => r.kind)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(await sliced.read()).toEqual(await whole.read());
    // Over its 3 seats; each of the three ends, the one change and the four new sessions is a correction.
    expect(await whole.read()).toMatchObject({ users: 6, exempt: 2, corrections: 8 });
    expect(await sliced.conns('rdsh-1')).toEqual(await whole.conns('rdsh-1'));
    expect(await redis.hget(sliced.keys.host('farm-a', 'rdsh-1').host, 'pending')).toBeNull();
    expect(await redis.hget(sliced.keys.host('farm-a', 'rdsh-1').host, 'seq')).toBe('2');
  });

  it("lets another host's items run between two slices, and ends as that order of the two hosts' items", async () => {
    const farm = await farmWith(2, { seats: 10 });
    const one = await farm.claim('rdsh-1');
    const two = await farm.claim('rdsh-2');
    const packed = packedSnapshot(before);
    expect((await farm.begin(one, 1, packed)).slice(0, 5)).toEqual(['begun', 0, '', 0, []]);
    expect(await farm.slice(one, 1, packed, 0, 3)).toEqual(['ok', expect.any(Number)]);
    // Half of rdsh-1's snapshot is in: the host's seq is not yet the snapshot's.
    expect(await redis.hget(farm.keys.host('farm-a', 'rdsh-1').host, 'seq')).toBe('0');
    expect((await farm.engine.applyEvents(two, [upsert(1, session('9', 'corp\\alice')) as ParsedEvent])).kind).toBe(
      'ok',
    );
    expect(await farm.slice(one, 1, packed, 3, 6)).toEqual(['ok', expect.any(Number)]);
    expect(await redis.hget(farm.keys.host('farm-a', 'rdsh-1').host, 'seq')).toBe('1');
    // alice once, on both hosts; the first admin's desktop counts, two are exempt; carol is disconnected.
    expect(await farm.read()).toMatchObject({ users: 4, exempt: 2, peak: 4 });
  });

  it('refuses, and writes nothing for, a slice of a host its connection no longer holds; the next snapshot replaces what the slices before applied', async () => {
    const farm = await farmWith(2);
    const old = await farm.claim('rdsh-1', 'old-connection');
    const packed = packedSnapshot(before);
    await farm.begin(old, 1, packed);
    const slice = (who: HostClaim, from: number, to: number) => farm.slice(who, 1, packed, from, to);
    await slice(old, 0, 4);
    expect(Object.keys(await farm.conns('rdsh-1'))).toHaveLength(4);

    // The agent reconnected: its new connection takes the host; the old one's next slice is refused.
    const renewed = await farm.claim('rdsh-1', 'new-connection');
    const conns = await farm.conns('rdsh-1');
    expect(await slice(old, 4, 6)).toEqual(['superseded']);
    expect(await farm.conns('rdsh-1')).toEqual(conns);
    // Nor may a slice come for a snapshot this connection never began.
    expect(await slice(renewed, 4, 6)).toEqual(['superseded']);

    const result = await farm.engine.applySnapshot(renewed, 2, after.slice(0, 2));
    expect(result).toMatchObject({ kind: 'ok', previousSeq: 0, lastSeq: 2 });
    expect(Object.keys(await farm.conns('rdsh-1')).sort()).toEqual(['a2', 'a3']);
    expect(await redis.hget(farm.keys.host('farm-a', 'rdsh-1').host, 'pending')).toBeNull();
    expect(await farm.read()).toMatchObject({ users: 0, exempt: 2 });
  });

  it('refuses the slices of a host retired between two of them: nothing is indexed on a retired host', async () => {
    const farm = await farmWith(2);
    const who = await farm.claim('rdsh-1');
    const packed = packedSnapshot(before);
    // A lease of 50 ms, as if the collector applying the slices had lost Redis for longer than that.
    const short = { ...SETTINGS, leaseMs: 50 };
    await runScript(redis, scriptCalls.beginSnapshot(farm.keys, farm.rules, who, short, 1, packed));
    const slice = (from: number, to: number) =>
      runScript(
        redis,
        scriptCalls.snapshotSlice(farm.keys, farm.rules, who, 50, {
          seq: 1,
          part: 'sessions',
          items: joinItems(packed.items, from, to),
          correcting: false,
          last: to === packed.items.length,
          accepted: true,
        }),
      );
    expect(await slice(0, 2)).toEqual(['ok', expect.any(Number)]);
    await sleep(100);
    // Another collector's round finds the lease lapsed and the host unseen for its retire time.
    expect(await farm.engine.maintainHost('rdsh-1', 1)).toEqual({ lapsed: true, retired: true });
    expect(await slice(2, 4)).toEqual(['superseded']);
    expect(await farm.conns('rdsh-1')).toEqual({});
    expect(await farm.read()).toMatchObject({ users: 0, exempt: 0 });
  });

  it('refused whole over a farm quota, still ends what it no longer lists, and applies nothing else', async () => {
    const farm = await farmWith(2, { maxSessions: 7 });
    const one = await farm.claim('rdsh-1');
    expect((await farm.engine.applySnapshot(one, 1, before)).kind).toBe('ok');
    // 7 sessions where 6 were is within the cap of 7; 8 is not.
    const over = [...after, session('8', 'corp\\gina')];
    const result = await farm.engine.applySnapshot(one, 2, over);
    expect(result).toMatchObject({
      kind: 'ok',
      previousSeq: 1,
      lastSeq: 2,
      applied: 1,
      farmQuota: { sessions: [2], newUsers: [] },
    });
    // a1, 1 and 3 are no longer listed: they end; nothing the snapshot lists went in.
    expect(Object.keys(await farm.conns('rdsh-1')).sort()).toEqual(['2', 'a2', 'a3']);
    expect(await redis.hget(farm.keys.host('farm-a', 'rdsh-1').host, 'synced')).toBe('1');
    expect(await redis.hget(farm.keys.host('farm-a', 'rdsh-1').host, 'pending')).toBeNull();
  });

  it("stopped part-way by a newer connection: the slices applied keep their users in the month's distinct users, and their script time is charged", async () => {
    // The engine's own Redis, through which another connection takes the host just before the
    // engine's second slice: the engine's loop, not a test's, meets the supersede.
    let slices = 0;
    const takeOver: { run?: () => Promise<unknown> } = {};
    const client = new Proxy(redis, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (typeof value !== 'function') return value;
        if (property !== 'rasmonSnapshotSlice') return value.bind(target);
        return async (...args: unknown[]) => {
          slices += 1;
          if (slices === 2) await takeOver.run?.();
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      },
    });
    const farm = await farmWith(2, {}, client);
    const first = await farm.claim('rdsh-1', 'first-connection');
    takeOver.run = () => farm.claim('rdsh-1', 'second-connection');
    const sessions = ['ann', 'ben', 'cid', 'dot', 'eve'].map((name, i) => session(String(i + 1), `corp\\${name}`));

    const result = await farm.engine.applySnapshot(first, 1, sessions);
    expect(result.kind).toBe('superseded');
    expect(result.scriptMs).toBeGreaterThan(0);
    expect(slices).toBe(2);
    // The first slice (ann, ben) was applied; the second and third never were.
    expect(Object.keys(await farm.conns('rdsh-1')).sort()).toEqual(['1', '2']);
    const monthSets = await redis.keys(farm.keys.monthUsers('farm-a', '*'));
    const monthUsers = new Set((await Promise.all(monthSets.map((key) => redis.smembers(key)))).flat());
    expect([...monthUsers].sort()).toEqual(['corp\\ann', 'corp\\ben']);
  });

  it("sends each of its scripts only once Redis answered what was sent before it on the connection: another farm's command that came meanwhile goes first", async () => {
    // The engine's own connection. After each of the snapshot's scripts is sent, another command
    // comes on the same connection and holds it (a blocking pop, 100 ms): the snapshot's next
    // script must not be sent before it was answered, or in Redis it would run first.
    const own = server.client();
    defineScripts(own);
    const others: Array<{ settled: boolean }> = [];
    const unansweredAtSend: number[] = [];
    const client = new Proxy(own, {
      get(target, property) {
        const value = Reflect.get(target, property, target) as unknown;
        if (typeof value !== 'function') return value;
        if (property !== 'rasmonBeginSnapshot' && property !== 'rasmonSnapshotSlice') return value.bind(target);
        return (...args: unknown[]) => {
          unansweredAtSend.push(others.filter((other) => !other.settled).length);
          const sent = (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          const other = { settled: false };
          others.push(other);
          void target.blpop(`other-farm-${process.pid}`, 0.1).finally(() => (other.settled = true));
          return sent;
        };
      },
    });
    try {
      const farm = await farmWith(2, { seats: 10 }, client);
      const one = await farm.claim('rdsh-1');
      const result = await farm.engine.applySnapshot(one, 1, before);
      expect(result.kind).toBe('ok');
      // The begin and three slices of two sessions, each sent with nothing before it unanswered.
      expect(unansweredAtSend).toEqual([0, 0, 0, 0]);
      expect(await farm.read()).toMatchObject({ users: 4, exempt: 2 });
    } finally {
      own.disconnect();
    }
  });

  it('counts a user of several sessions once against the new-users budget, sliced or whole', async () => {
    // Each user twice: four sessions, two users new to the farm, in a minute's room of two.
    const twice = ['corp\\alice', 'corp\\bob'].flatMap((user, u) => [
      session(`${2 * u + 1}`, user),
      session(`${2 * u + 2}`, user, { kind: 'app' }),
    ]);
    for (const sliceItems of [2, 1000]) {
      const farm = await farmWith(sliceItems, { seats: 10, maxNewUsersPerMinute: 2 });
      const one = await farm.claim('rdsh-1');
      expect(await farm.engine.applySnapshot(one, 1, twice)).toMatchObject({ kind: 'ok', farmQuota: { newUsers: [] } });
      expect(await farm.read()).toMatchObject({ users: 2 });
      // A third user is one more than the minute's room, whichever of its sessions lists it.
      const two = await farm.claim('rdsh-2');
      const third = ['desktop', 'app', 'app'].map((kind, i) =>
        session(`${i + 1}`, 'corp\\carol', { kind: kind as Session['kind'] }),
      );
      expect(await farm.engine.applySnapshot(two, 1, third)).toMatchObject({
        kind: 'ok',
        farmQuota: { newUsers: [1] },
      });
      expect(await farm.read()).toMatchObject({ users: 2 });
    }
  });

  it("does not count as new the users a host's periodic snapshot lists that it holds in sessions that do not consume: disconnected (the farm not counting them) or exempt admins", async () => {
    const cases = [
      {
        countDisconnected: false,
        held: [
          session('1', 'corp\\alice'),
          session('2', 'corp\\bob', { state: 'disconnected' }),
          session('3', 'corp\\carol', { state: 'disconnected' }),
        ],
      },
      // Two administrators' desktops: the host's two exempt sessions (docs/design.md §2 rule 2).
      {
        countDisconnected: true,
        held: [session('1', 'corp\\alice'), admin('2', 'corp\\bob', 2), admin('3', 'corp\\carol', 3)],
      },
    ];
    for (const { countDisconnected, held } of cases) {
      for (const sliceItems of [2, 1000]) {
        const farm = await farmWith(sliceItems, { countDisconnected, maxNewUsersPerMinute: 3 });
        const who = await farm.claim('rdsh-1');
        expect(await farm.engine.applySnapshot(who, 1, held)).toMatchObject({ farmQuota: { newUsers: [] } });
        expect(await farm.read()).toMatchObject({ users: 1 });
        // A minute later, made-up users of another host took all the minute's room.
        const newUsers = farm.keys.farm('farm-a').newUsers;
        const now = Number((await redis.time())[0]) * 1000;
        await redis.del(newUsers);
        await redis.zadd(newUsers, now, 'corp\\x', now, 'corp\\y', now, 'corp\\z');
        // bob and carol consume nowhere, but the host holds them: its next periodic snapshot is not refused.
        expect(await farm.engine.applySnapshot(who, 2, held)).toMatchObject({
          kind: 'ok',
          farmQuota: { newUsers: [] },
        });
        // A user new to the farm in the same listing is (the sliced path as the whole one).
        const withNew = [...held, session('4', 'corp\\dave', { state: 'disconnected' })];
        expect(await farm.engine.applySnapshot(who, 3, withNew)).toMatchObject({ farmQuota: { newUsers: [3] } });
      }
    }
  });
});
