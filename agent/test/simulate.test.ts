import { parseSession, type Session } from '@rasmon/protocol';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Random } from '../src/simulator/random.js';
import { SessionSimulator, type SimulationOptions } from '../src/simulator/simulate.js';
import { simulateFleet } from '../src/simulator/simulate-fleet.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const START = Date.UTC(2026, 0, 5, 8);
const USERS = Array.from({ length: 80 }, (_, i) => `CORP\\User${String(i + 1).padStart(3, '0')}`);
const ADMINS = ['CORP\\adm-alice', 'CORP\\adm-bob', 'CORP\\adm-carol'];

function simulator(overrides: Partial<SimulationOptions> = {}): SessionSimulator {
  return new SessionSimulator({
    seed: 42,
    host: 'rdsh-01',
    users: [...USERS, ...ADMINS],
    admins: ADMINS,
    targetSessions: 40,
    startMs: START,
    ...overrides,
  });
}

/**
 * Watches a simulator in steps and records every broken rule of docs/design.md §2 rule 1: an id listed
 * twice or out of order, an id back after it ended, a logon fact (`since`, `admin`, user, kind, via)
 * that changed, a session the protocol would reject. Records the state transitions it saw.
 * Plain checks rather than `expect` per session: a day in 10-second steps is a million of them.
 */
class Observer {
  readonly problems: string[] = [];
  readonly first = new Map<string, Session>();
  readonly ended = new Set<string>();
  readonly reconnected = new Set<string>();
  readonly loggedOffDisconnected = new Set<string>();
  private previous = new Map<string, { session: Session; json: string }>();

  look(sim: SessionSimulator): Session[] {
    const list = sim.sessions();
    const current = new Map<string, { session: Session; json: string }>();
    let lastId: string | undefined;
    for (const session of list) {
      const { id } = session;
      if (lastId !== undefined && !(lastId < id)) this.problems.push(`${id} listed twice or out of order`);
      lastId = id;
      const json = JSON.stringify(session);
      current.set(id, { session, json });
      const before = this.previous.get(id);
      if (before?.json === json) continue;
      if (this.ended.has(id)) this.problems.push(`${id} came back after it ended`);
      if (session.since > sim.now) this.problems.push(`${id} logged on in the future`);
      const parsed = parseSession(JSON.parse(json));
      if ('reason' in parsed) this.problems.push(`${id}: ${parsed.reason}`);
      const first = this.first.get(id);
      if (!first) {
        this.first.set(id, session);
      } else if (
        first.since !== session.since ||
        first.admin !== session.admin ||
        first.user !== session.user ||
        first.kind !== session.kind ||
        first.via !== session.via
      ) {
        this.problems.push(`${id} changed a logon fact: ${JSON.stringify(first)} -> ${json}`);
      }
      if (before?.session.state === 'disconnected' && session.state === 'active') this.reconnected.add(id);
    }
    for (const [id, { session }] of this.previous) {
      if (current.has(id)) continue;
      this.ended.add(id);
      if (session.state === 'disconnected') this.loggedOffDisconnected.add(id);
    }
    this.previous = current;
    return list;
  }
}

function invalidSessions(list: Session[]): string[] {
  return list.flatMap((session) => {
    const parsed = parseSession(JSON.parse(JSON.stringify(session)));
    return 'reason' in parsed ? [`${session.id}: ${parsed.reason}`] : [];
  });
}

describe('SessionSimulator', () => {
  test('the same seed and the same calls give identical sessions; another seed does not', () => {
    const play = (seed: number) => {
      const sim = simulator({ seed });
      const seen: Session[][] = [];
      sim.advanceTo(START + 20 * MINUTE);
      seen.push(sim.sessions());
      const forced = sim.logon('CORP\\visitor', { kind: 'app' });
      sim.advanceTo(START + 50 * MINUTE);
      sim.disconnect(forced.id);
      sim.advanceTo(START + 3 * HOUR);
      seen.push(sim.sessions());
      return seen;
    };
    expect(play(42)).toEqual(play(42));
    expect(play(43)).not.toEqual(play(42));
  });

  test('advancing in many small steps gives the same sessions as one jump', () => {
    const stepped = simulator();
    for (let t = START; t <= START + 6 * HOUR; t += 7_919) stepped.advanceTo(t);
    stepped.advanceTo(START + 6 * HOUR);
    const jumped = simulator();
    jumped.advanceTo(START + 6 * HOUR);
    expect(stepped.sessions()).toEqual(jumped.sessions());
    expect(stepped.stats()).toEqual(jumped.stats());
  });

  test('over 24 simulated hours ids stay unique and never come back, and logon facts never change', () => {
    const sim = simulator();
    const observer = new Observer();
    for (let t = START; t <= START + 24 * HOUR; t += 15_000) {
      sim.advanceTo(t);
      observer.look(sim);
    }
    expect(observer.problems).toEqual([]);
    const stats = sim.stats();
    // Enough churn that the rules were really exercised: ~1,900 logons at 40/30 per minute.
    expect(stats.logons).toBeGreaterThan(1_500);
    expect(observer.ended.size).toBeGreaterThan(1_400);
    expect(observer.first.size).toBe(observer.ended.size + sim.sessions().length);
  });

  test('disconnected sessions come back under the same id and since, and the others log off', () => {
    const sim = simulator();
    const observer = new Observer();
    sim.advanceTo(START + 2 * HOUR);
    const disconnectedAtTwoHours = sim.sessions().filter((s) => s.state === 'disconnected');
    expect(disconnectedAtTwoHours.length).toBeGreaterThan(0);
    for (let t = START + 2 * HOUR; t <= START + 26 * HOUR; t += 10_000) {
      sim.advanceTo(t);
      observer.look(sim);
    }
    expect(observer.problems).toEqual([]);
    expect(observer.reconnected.size).toBeGreaterThan(50);
    expect(observer.loggedOffDisconnected.size).toBeGreaterThan(50);
    // Sessions live 30 minutes on average: a day later every one of them has logged off.
    for (const session of disconnectedAtTwoHours) expect(sim.session(session.id)).toBeUndefined();
  });

  test.each([
    { seed: 1, initialSessions: undefined },
    { seed: 2, initialSessions: undefined },
    { seed: 3, initialSessions: 0 },
    { seed: 4, initialSessions: 0 },
  ])(
    'seed $seed, initial $initialSessions: the host stays near targetSessions for a day',
    ({ seed, initialSessions }) => {
      const sim = simulator({ seed, targetSessions: 40, ...(initialSessions !== undefined && { initialSessions }) });
      const sizes: number[] = [];
      let disconnected = 0;
      for (let t = START; t <= START + 24 * HOUR; t += MINUTE) {
        sim.advanceTo(t);
        if (t < START + HOUR) continue;
        const list = sim.sessions();
        sizes.push(list.length);
        disconnected += list.filter((s) => s.state === 'disconnected').length;
      }
      const mean = sizes.reduce((sum, size) => sum + size, 0) / sizes.length;
      expect(mean).toBeGreaterThan(34);
      expect(mean).toBeLessThan(44);
      expect(Math.min(...sizes)).toBeGreaterThanOrEqual(10);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(80);
      // About a fifth disconnected: (disconnects − reconnects) / logoffs = (0.5 − 0.3) / 1.
      const disconnectedShare = disconnected / sizes.reduce((sum, size) => sum + size, 0);
      expect(disconnectedShare).toBeGreaterThan(0.14);
      expect(disconnectedShare).toBeLessThan(0.26);
    },
  );

  test('a host far above its target sheds sessions back toward it', () => {
    const sim = simulator({ targetSessions: 20, initialSessions: 0, users: USERS.slice(0, 60), admins: [] });
    for (const user of USERS) sim.logon(user);
    for (const user of USERS) sim.logon(user, { kind: 'app' });
    expect(sim.sessions()).toHaveLength(160);
    sim.advanceTo(START + 4 * HOUR);
    expect(sim.sessions().length).toBeLessThan(35);
    expect(sim.sessions().length).toBeGreaterThan(5);
  });

  test('a starting host already holds sessions logged on earlier, some of them disconnected', () => {
    const list = simulator().sessions();
    expect(list).toHaveLength(40);
    expect(list.every((s) => s.since <= START)).toBe(true);
    expect(list.some((s) => s.since < START - 10 * MINUTE)).toBe(true);
    expect(list.some((s) => s.state === 'disconnected')).toBe(true);
    expect(invalidSessions(list)).toEqual([]);
    expect(simulator({ initialSessions: 0 }).sessions()).toEqual([]);
  });

  test('a user holds at most one simulated session of each kind on a host, yet may hold a desktop and an app', () => {
    const sim = simulator({ users: USERS.slice(0, 30), targetSessions: 25, appShare: 0.5 });
    let bothKinds = 0;
    for (let t = START; t <= START + 12 * HOUR; t += 5 * MINUTE) {
      sim.advanceTo(t);
      const kinds = new Map<string, string[]>();
      for (const s of sim.sessions()) kinds.set(s.user, [...(kinds.get(s.user) ?? []), s.kind]);
      for (const list of kinds.values()) expect(new Set(list).size).toBe(list.length);
      bothKinds += [...kinds.values()].filter((list) => list.length === 2).length;
    }
    expect(bothKinds).toBeGreaterThan(0);
  });

  test('admin is true exactly for the admins, users come from the population, and every combination occurs', () => {
    const sim = simulator({ rdpShare: 0.2 });
    const population = new Set([...USERS, ...ADMINS]);
    const combinations = new Set<string>();
    for (let t = START; t <= START + 24 * HOUR; t += 5 * MINUTE) {
      sim.advanceTo(t);
      for (const s of sim.sessions()) {
        expect(population.has(s.user)).toBe(true);
        expect(s.admin).toBe(ADMINS.includes(s.user));
        combinations.add(`${s.admin}/${s.kind}/${s.via}/${s.state}`);
      }
    }
    expect(combinations.size).toBe(16);
  });

  test('the domain goes before bare user names only', () => {
    const sim = simulator({
      domain: 'LAB',
      users: ['alice', 'OTHER\\bob', 'carol@lab.example'],
      admins: ['alice'],
      targetSessions: 3,
    });
    sim.advanceTo(START + 24 * HOUR);
    expect(sim.logon('dave').user).toBe('LAB\\dave');
    expect(sim.logon('alice').admin).toBe(true);
    const users = new Set<string>();
    const watch = simulator({ domain: 'LAB', users: ['alice', 'OTHER\\bob', 'carol@lab.example'], targetSessions: 3 });
    for (let t = START; t <= START + 24 * HOUR; t += 10 * MINUTE) {
      watch.advanceTo(t);
      for (const s of watch.sessions()) users.add(s.user);
    }
    expect([...users].sort()).toEqual(['LAB\\alice', 'OTHER\\bob', 'carol@lab.example']);
  });

  test('forced logon, disconnect, reconnect and logoff change exactly the named session', () => {
    const sim = simulator({
      initialSessions: 0,
      logonsPerMinute: 0,
      logoffsPerMinute: 0,
      disconnectsPerMinute: 0,
      reconnectsPerMinute: 0,
    });
    sim.advanceTo(START + MINUTE);
    const desktop = sim.logon('CORP\\adm-alice', { via: 'rdp' });
    expect(desktop).toMatchObject({
      user: 'CORP\\adm-alice',
      admin: true,
      kind: 'desktop',
      via: 'rdp',
      state: 'active',
      since: START + MINUTE,
    });
    const app = sim.logon('CORP\\adm-alice', { kind: 'app', since: START, client: undefined });
    expect(app.client).toBeUndefined();
    expect(app.id).not.toBe(desktop.id);
    const third = sim.logon('CORP\\adm-alice');
    expect(sim.sessions().map((s) => s.id)).toEqual([desktop.id, app.id, third.id].sort());

    expect(sim.disconnect(desktop.id)).toBe(true);
    expect(sim.disconnect(desktop.id)).toBe(false);
    expect(sim.session(desktop.id)).toEqual({ ...desktop, state: 'disconnected' });
    expect(sim.reconnect(app.id)).toBe(false);
    sim.advanceTo(START + 2 * MINUTE);
    expect(sim.reconnect(desktop.id, { name: 'LAPTOP-HOME', address: '192.168.1.20' })).toBe(true);
    expect(sim.session(desktop.id)).toEqual({ ...desktop, client: { name: 'LAPTOP-HOME', address: '192.168.1.20' } });

    expect(sim.logoff(app.id)).toBe(true);
    expect(sim.logoff(app.id)).toBe(false);
    expect(sim.logoff('no-such-id')).toBe(false);
    expect(sim.disconnect('no-such-id')).toBe(false);
    expect(sim.sessions().map((s) => s.id)).toEqual([desktop.id, third.id].sort());
    expect(sim.stats()).toEqual({ logons: 3, logoffs: 1, disconnects: 1, reconnects: 1 });

    expect(() => sim.logon('CORP\\late', { since: START + HOUR })).toThrow(RangeError);
    expect(() => sim.logon('   ')).toThrow(RangeError);
  });

  test('sessions() hands out copies', () => {
    const sim = simulator();
    const [first] = sim.sessions();
    if (!first) throw new Error('expected a session');
    first.state = first.state === 'active' ? 'disconnected' : 'active';
    if (first.client) first.client.name = 'TAMPERED';
    expect(sim.session(first.id)?.state).not.toBe(first.state);
    expect(sim.session(first.id)?.client?.name).not.toBe('TAMPERED');
  });

  test('the clock never goes back', () => {
    const sim = simulator();
    sim.advanceTo(START + HOUR);
    const before = sim.sessions();
    sim.advanceTo(START);
    expect(sim.now).toBe(START + HOUR);
    expect(sim.sessions()).toEqual(before);
  });

  test('as the agent source, list(now) advances the clock and lists the sessions', async () => {
    const source = simulator();
    const twin = simulator();
    twin.advanceTo(START + HOUR);
    expect(source.name).toBe('simulate');
    expect(await source.list(START + HOUR)).toEqual(twin.sessions());
  });

  test.each<[string, Partial<SimulationOptions>]>([
    ['reconnects not below disconnects', { disconnectsPerMinute: 1, reconnectsPerMinute: 1 }],
    ['disconnected sessions piling up', { logoffsPerMinute: 1, disconnectsPerMinute: 3, reconnectsPerMinute: 1 }],
    ['logons that never log off', { logonsPerMinute: 1, logoffsPerMinute: 0 }],
    ['a negative rate', { logonsPerMinute: -1 }],
    ['a share above 1', { appShare: 1.5 }],
    ['a zero target', { targetSessions: 0 }],
    ['a host name outside the protocol pattern', { host: 'bad host' }],
    ['a blank user', { users: ['ok', ' '] }],
  ])('refuses %s', (_, overrides) => {
    expect(() => simulator(overrides)).toThrow(RangeError);
  });

  test('invariants hold for any seed and any mix of advances and forced changes', () => {
    const step = fc.oneof(
      fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 2 * HOUR }) }),
      fc.record({
        op: fc.constantFrom('logoff' as const, 'disconnect' as const, 'reconnect' as const),
        pick: fc.nat(),
      }),
      fc.record({
        op: fc.constant('logon' as const),
        user: fc.constantFrom(...USERS.slice(0, 5), ...ADMINS),
        kind: fc.constantFrom('desktop' as const, 'app' as const),
      }),
    );
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 1, max: 30 }),
        fc.array(step, { maxLength: 25 }),
        (seed, target, steps) => {
          const sim = simulator({ seed, targetSessions: target, logonsPerMinute: target / 5 });
          const observer = new Observer();
          observer.look(sim);
          for (const s of steps) {
            const live = sim.sessions();
            const id = live.length > 0 && 'pick' in s ? live[s.pick % live.length]?.id : undefined;
            if (s.op === 'advance') sim.advanceTo(sim.now + s.ms);
            else if (s.op === 'logon') sim.logon(s.user, { kind: s.kind });
            else if (id !== undefined) sim[s.op](id);
            for (const session of observer.look(sim)) expect(session.admin).toBe(ADMINS.includes(session.user));
          }
          expect(observer.problems).toEqual([]);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('for any seed, advancing in arbitrary steps ends where one jump ends', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.array(fc.integer({ min: 0, max: HOUR }), { minLength: 1, maxLength: 20 }),
        (seed, gaps) => {
          const stepped = simulator({ seed });
          for (const gap of gaps) stepped.advanceTo(stepped.now + gap);
          const jumped = simulator({ seed });
          jumped.advanceTo(stepped.now);
          expect(stepped.sessions()).toEqual(jumped.sessions());
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('simulateFleet', () => {
  const fleetOptions = { seed: 7, hosts: 12, users: 300, admins: 3, startMs: START };

  test('spreads users over hosts, some on two, administrators on every host, ids unique across the fleet', () => {
    const fleet = simulateFleet(fleetOptions);
    expect(fleet.map((f) => f.host)).toEqual(
      Array.from({ length: 12 }, (_, i) => `rdsh-${String(i + 1).padStart(2, '0')}`),
    );
    const hostsOfUser = new Map<string, Set<string>>();
    const ids = new Set<string>();
    let sessions = 0;
    for (let t = START; t <= START + 8 * HOUR; t += 30 * MINUTE) {
      for (const { host, simulator: sim } of fleet) {
        sim.advanceTo(t);
        for (const s of sim.sessions()) {
          ids.add(s.id);
          if (!hostsOfUser.has(s.user)) hostsOfUser.set(s.user, new Set());
          hostsOfUser.get(s.user)?.add(host);
        }
      }
    }
    for (const { simulator: sim } of fleet) {
      const list = sim.sessions();
      sessions += list.length;
      expect(invalidSessions(list)).toEqual([]);
      expect(list.every((s) => s.id.startsWith(`${sim.host}:`))).toBe(true);
    }
    expect(sessions).toBeGreaterThan(120);
    expect(sessions).toBeLessThan(320);
    expect(ids.size).toBeGreaterThan(1_000);
    const regular = [...hostsOfUser].filter(([user]) => /\\user\d+$/.test(user));
    expect(regular.some(([, hosts]) => hosts.size === 2)).toBe(true);
    expect(regular.every(([, hosts]) => hosts.size <= 2)).toBe(true);
    expect(hostsOfUser.get('CORP\\admin01')?.size).toBeGreaterThan(6);
  });

  test('replays from its seed', () => {
    const run = (seed: number) =>
      simulateFleet({ ...fleetOptions, seed }).map(({ simulator: sim }) => {
        sim.advanceTo(START + 2 * HOUR);
        return sim.sessions();
      });
    expect(run(7)).toEqual(run(7));
    expect(run(8)).not.toEqual(run(7));
  });
});

describe('Random', () => {
  test('the same seed gives the same stream; seeds differing only above 32 bits do not', () => {
    const stream = (seed: number) => {
      const rng = new Random(seed);
      return Array.from({ length: 5 }, () => rng.uint32());
    };
    expect(stream(1)).toEqual(stream(1));
    expect(stream(1)).not.toEqual(stream(2));
    expect(stream(1)).not.toEqual(stream(1 + 2 ** 32));
  });

  test('int stays within its bounds and reaches both; pick reaches every item', () => {
    const rng = new Random(9);
    const ints = new Set(Array.from({ length: 500 }, () => rng.int(-2, 3)));
    expect([...ints].sort((a, b) => a - b)).toEqual([-2, -1, 0, 1, 2, 3]);
    const picked = new Set(Array.from({ length: 200 }, () => rng.pick(['a', 'b', 'c'])));
    expect(picked.size).toBe(3);
    expect(() => rng.pick([])).toThrow(RangeError);
  });

  test('exponential waits average their mean', () => {
    const rng = new Random(3);
    const waits = Array.from({ length: 20_000 }, () => rng.exponential(10));
    expect(waits.every((w) => w >= 0)).toBe(true);
    const mean = waits.reduce((a, b) => a + b, 0) / waits.length;
    expect(mean).toBeGreaterThan(9.6);
    expect(mean).toBeLessThan(10.4);
  });
});
