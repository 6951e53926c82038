import { describe, it, expect } from 'vitest';
import {
  DAY_MS,
  ReferenceFarm,
  compareUtf8,
  evaluateUsage,
  expiryStatus,
  overuseGraceStatus,
  utcDay,
  type HostView,
  type Session,
} from '../src/index.js';

const T0 = Date.UTC(2026, 2, 10, 9, 0, 0);
const MINUTE = 60_000;
const HOUR = 3_600_000;

let nextId = 0;
/** A connection with normalized user; a non-admin active RAS desktop unless told otherwise. */
function conn(user: string, overrides: Partial<Session> = {}): Session {
  nextId += 1;
  return {
    id: `c${nextId}`,
    user,
    admin: false,
    kind: 'desktop',
    via: 'ras',
    state: 'active',
    since: T0,
    ...overrides,
  };
}

const adminDesktop = (user: string, since: number, overrides: Partial<Session> = {}): Session =>
  conn(user, { admin: true, kind: 'desktop', since, ...overrides });

function host(name: string, connections: Session[], flags: Partial<HostView> = {}): HostView {
  return { host: name, live: true, retired: false, connections, ...flags };
}

function usageOf(connections: Session[], options: { seats?: number; countDisconnected?: boolean } = {}) {
  return evaluateUsage({
    seats: options.seats ?? 10,
    countDisconnected: options.countDisconnected ?? true,
    hosts: [host('rdsh-01', connections)],
  });
}

/** The ids of the connections that are exempt, in the order evaluateUsage lists them. */
function exemptOf(usage: ReturnType<typeof evaluateUsage>): string[] {
  return usage.connections.filter((c) => c.exempt).map((c) => c.id);
}

describe('evaluateUsage: consumption by connection type and rights', () => {
  it.each([
    ['desktop', 'ras'],
    ['desktop', 'rdp'],
    ['app', 'ras'],
    ['app', 'rdp'],
  ] as const)('a non-admin %s via %s consumes', (kind, via) => {
    const usage = usageOf([conn('corp\\alice', { kind, via })]);
    expect(usage.users).toBe(1);
    expect(usage.connections[0]).toMatchObject({ exempt: false, consumes: true });
  });

  it.each(['ras', 'rdp'] as const)('an admin published app consumes (via %s)', (via) => {
    const usage = usageOf([conn('corp\\admin', { admin: true, kind: 'app', via })]);
    expect(usage.users).toBe(1);
    expect(usage.exemptConnections).toBe(0);
    expect(usage.connections[0]).toMatchObject({ exempt: false, consumes: true });
  });

  it('an admin RAS published desktop does not consume', () => {
    const usage = usageOf([adminDesktop('corp\\admin', T0, { via: 'ras' })]);
    expect(usage.users).toBe(0);
    expect(usage.exemptConnections).toBe(1);
    expect(usage.connections[0]).toMatchObject({ exempt: true, consumes: false });
  });

  it('an admin direct RDP desktop does not consume', () => {
    const usage = usageOf([adminDesktop('corp\\admin', T0, { via: 'rdp' })]);
    expect(usage.users).toBe(0);
    expect(usage.connections[0]).toMatchObject({ exempt: true, consumes: false });
  });

  it('two admin desktops of either via on one host are exempt', () => {
    const usage = usageOf([
      adminDesktop('corp\\a1', T0, { via: 'ras' }),
      adminDesktop('corp\\a2', T0 + 1, { via: 'rdp' }),
    ]);
    expect(usage.users).toBe(0);
    expect(usage.exemptConnections).toBe(2);
  });

  it('a third admin desktop on one host consumes', () => {
    const first = adminDesktop('corp\\a1', T0);
    const second = adminDesktop('corp\\a2', T0 + MINUTE, { via: 'rdp' });
    const third = adminDesktop('corp\\a3', T0 + 2 * MINUTE);
    const usage = usageOf([third, first, second]);
    expect(exemptOf(usage).sort()).toEqual([first.id, second.id].sort());
    expect([...usage.consumingUsers]).toEqual(['corp\\a3']);
    expect(usage.users).toBe(1);
  });

  it("an admin's own third desktop on one host consumes", () => {
    const usage = usageOf([
      adminDesktop('corp\\admin', T0),
      adminDesktop('corp\\admin', T0 + 1),
      adminDesktop('corp\\admin', T0 + 2),
    ]);
    expect(usage.exemptConnections).toBe(2);
    expect(usage.users).toBe(1);
  });

  it('an admin published app takes no exemption slot', () => {
    const app = conn('corp\\a0', { admin: true, kind: 'app', since: T0 - HOUR });
    const desktops = [adminDesktop('corp\\a1', T0), adminDesktop('corp\\a2', T0 + 1)];
    const usage = usageOf([app, ...desktops]);
    expect(exemptOf(usage).sort()).toEqual(desktops.map((d) => d.id).sort());
    expect([...usage.consumingUsers]).toEqual(['corp\\a0']);
  });

  it('exemption goes to the earliest logons, not the order listed', () => {
    const late = adminDesktop('corp\\late', T0 + HOUR);
    const early = adminDesktop('corp\\early', T0);
    const middle = adminDesktop('corp\\middle', T0 + MINUTE);
    const usage = usageOf([late, middle, early]);
    expect(exemptOf(usage).sort()).toEqual([early.id, middle.id].sort());
    expect([...usage.consumingUsers]).toEqual(['corp\\late']);
  });

  it('when an exempt admin desktop ends the next one becomes exempt', () => {
    const first = adminDesktop('corp\\a1', T0);
    const second = adminDesktop('corp\\a2', T0 + MINUTE);
    const third = adminDesktop('corp\\a3', T0 + 2 * MINUTE);
    expect(usageOf([first, second, third]).users).toBe(1);
    const after = usageOf([second, third]);
    expect(after.users).toBe(0);
    expect(exemptOf(after).sort()).toEqual([second.id, third.id].sort());
  });

  it('exemption ties on since are broken by id in UTF-8 byte order', () => {
    // UTF-16 code units put U+1F600 (0xD83D…) before U+FF21; UTF-8 bytes put U+FF21 (EF…) before it (F0…).
    const astral = adminDesktop('corp\\astral', T0, { id: '\u{1F600}' });
    const fullwidth = adminDesktop('corp\\fullwidth', T0, { id: '\uFF21' });
    const ascii = adminDesktop('corp\\ascii', T0, { id: 'z' });
    const usage = usageOf([astral, fullwidth, ascii]);
    expect(exemptOf(usage).sort(compareUtf8)).toEqual(['z', '\uFF21']);
    expect([...usage.consumingUsers]).toEqual(['corp\\astral']);
  });

  it('exemption ties on since order upper-case ids before lower-case ones', () => {
    const usage = usageOf([
      adminDesktop('corp\\lower', T0, { id: 'a' }),
      adminDesktop('corp\\upper', T0, { id: 'B' }),
      adminDesktop('corp\\digit', T0, { id: '9' }),
    ]);
    expect([...usage.consumingUsers]).toEqual(['corp\\lower']);
  });

  it('exemption is per host', () => {
    const hostA = [adminDesktop('corp\\a1', T0), adminDesktop('corp\\a2', T0 + 1)];
    const hostB = [adminDesktop('corp\\b1', T0 + 2), adminDesktop('corp\\b2', T0 + 3)];
    const both = evaluateUsage({
      seats: 10,
      countDisconnected: true,
      hosts: [host('rdsh-a', hostA), host('rdsh-b', hostB)],
    });
    expect(both.exemptConnections).toBe(4);
    expect(both.users).toBe(0);
    const third = adminDesktop('corp\\b3', T0 + 4);
    const crowded = evaluateUsage({
      seats: 10,
      countDisconnected: true,
      hosts: [host('rdsh-a', hostA), host('rdsh-b', [...hostB, third])],
    });
    expect(crowded.exemptConnections).toBe(4);
    expect([...crowded.consumingUsers]).toEqual(['corp\\b3']);
  });

  it("a disconnected session still holds its user's license", () => {
    const usage = usageOf([conn('corp\\alice', { state: 'disconnected' })]);
    expect(usage.users).toBe(1);
    expect(usage.connections[0]).toMatchObject({ consumes: true });
  });

  it('a disconnected admin desktop takes an exemption slot while disconnected sessions count', () => {
    const usage = usageOf([
      adminDesktop('corp\\gone', T0, { state: 'disconnected' }),
      adminDesktop('corp\\a2', T0 + 1),
      adminDesktop('corp\\a3', T0 + 2),
    ]);
    expect([...usage.consumingUsers]).toEqual(['corp\\a3']);
  });

  it('countDisconnected false drops disconnected connections from counting and from exemption slots', () => {
    const gone = adminDesktop('corp\\gone', T0, { state: 'disconnected' });
    const second = adminDesktop('corp\\a2', T0 + 1);
    const third = adminDesktop('corp\\a3', T0 + 2);
    const idle = conn('corp\\idle', { state: 'disconnected' });
    const usage = usageOf([gone, second, third, idle], { countDisconnected: false });
    expect(usage.users).toBe(0);
    expect(exemptOf(usage).sort()).toEqual([second.id, third.id].sort());
    expect(usage.exemptConnections).toBe(2);
    // They still show as connections, neither exempt nor consuming.
    expect(usage.connections).toHaveLength(4);
    expect(usage.connections.find((c) => c.id === gone.id)).toMatchObject({ exempt: false, consumes: false });
    expect(usage.connections.find((c) => c.id === idle.id)).toMatchObject({ exempt: false, consumes: false });
  });

  it('a user with connections on several hosts takes one license', () => {
    const usage = evaluateUsage({
      seats: 10,
      countDisconnected: true,
      hosts: [
        host('rdsh-a', [conn('corp\\alice'), conn('corp\\alice', { kind: 'app' })]),
        host('rdsh-b', [conn('corp\\alice', { via: 'rdp', state: 'disconnected' })]),
        host('rdsh-c', [conn('corp\\bob')]),
      ],
    });
    expect(usage.users).toBe(2);
    expect(usage.connections).toHaveLength(4);
  });

  it('a user with an exempt and a consuming connection takes one license', () => {
    const usage = usageOf([adminDesktop('corp\\admin', T0), conn('corp\\admin', { admin: true, kind: 'app' })]);
    expect(usage.users).toBe(1);
    expect(usage.exemptConnections).toBe(1);
  });

  it('overuse users are the users in use above the seats, never negative', () => {
    const four = ['a', 'b', 'c', 'd'].map((u) => conn(`corp\\${u}`));
    expect(usageOf(four, { seats: 3 }).overuseUsers).toBe(1);
    expect(usageOf(four, { seats: 4 }).overuseUsers).toBe(0);
    expect(usageOf(four, { seats: 6 }).overuseUsers).toBe(0);
    expect(usageOf(four, { seats: 0 }).overuseUsers).toBe(4);
  });

  it("a stale host's users still count and are unverified", () => {
    const usage = evaluateUsage({
      seats: 10,
      countDisconnected: true,
      hosts: [host('rdsh-a', [conn('corp\\alice')]), host('rdsh-b', [conn('corp\\bob')], { live: false })],
    });
    expect(usage.users).toBe(2);
    expect(usage.unverifiedUsers).toBe(1);
    expect(usage.connections.map((c) => c.host).sort()).toEqual(['rdsh-a', 'rdsh-b']);
  });

  it('a user also on a live host is verified', () => {
    const usage = evaluateUsage({
      seats: 10,
      countDisconnected: true,
      hosts: [host('rdsh-a', [conn('corp\\alice')]), host('rdsh-b', [conn('corp\\alice')], { live: false })],
    });
    expect(usage.users).toBe(1);
    expect(usage.unverifiedUsers).toBe(0);
  });

  it('a user whose only live connection is exempt is held only through the stale host', () => {
    const usage = evaluateUsage({
      seats: 10,
      countDisconnected: true,
      hosts: [
        host('rdsh-a', [adminDesktop('corp\\admin', T0)]),
        host('rdsh-b', [conn('corp\\admin', { admin: true, kind: 'app' })], { live: false }),
      ],
    });
    expect(usage.users).toBe(1);
    expect(usage.unverifiedUsers).toBe(1);
  });

  it("a retired host's connections neither count nor show", () => {
    const usage = evaluateUsage({
      seats: 10,
      countDisconnected: true,
      hosts: [
        host('rdsh-a', [conn('corp\\alice')]),
        host('rdsh-b', [conn('corp\\bob'), adminDesktop('corp\\admin', T0)], { live: false, retired: true }),
      ],
    });
    expect(usage.users).toBe(1);
    expect(usage.exemptConnections).toBe(0);
    expect(usage.connections.map((c) => c.user)).toEqual(['corp\\alice']);
  });
});

describe('compareUtf8', () => {
  it('orders strings by UTF-8 bytes, not UTF-16 code units', () => {
    expect(compareUtf8('\uFF21', '\u{1F600}')).toBeLessThan(0);
    expect(compareUtf8('\u{1F600}', '\uFF21')).toBeGreaterThan(0);
    expect(compareUtf8('B', 'a')).toBeLessThan(0);
    expect(compareUtf8('ab', 'ab')).toBe(0);
    expect(compareUtf8('a', 'ab')).toBeLessThan(0);
  });
});

describe('expiryStatus', () => {
  const expiresMs = Date.UTC(2027, 5, 30);
  const at = (license: 'primary' | 'sublicense', nowMs: number) =>
    expiryStatus({ license, expiresMs, expiryGraceDays: 30, nowMs });

  it('a primary license is active before expiry, in grace for 30 days from expiry, then expired', () => {
    expect(at('primary', expiresMs - 1)).toEqual({ state: 'active', graceEndMs: expiresMs + 30 * DAY_MS });
    expect(at('primary', expiresMs).state).toBe('grace');
    expect(at('primary', expiresMs + 30 * DAY_MS - 1).state).toBe('grace');
    expect(at('primary', expiresMs + 30 * DAY_MS).state).toBe('expired');
  });

  it('a primary license grace follows expiryGraceDays', () => {
    const status = expiryStatus({ license: 'primary', expiresMs, expiryGraceDays: 5, nowMs: expiresMs + 6 * DAY_MS });
    expect(status).toEqual({ state: 'expired', graceEndMs: expiresMs + 5 * DAY_MS });
  });

  it('a sublicense has no expiry grace', () => {
    expect(at('sublicense', expiresMs - 1)).toEqual({ state: 'active', graceEndMs: expiresMs });
    expect(at('sublicense', expiresMs)).toEqual({ state: 'expired', graceEndMs: expiresMs });
  });
});

describe('overuseGraceStatus', () => {
  const start = T0;
  const status = (nowMs: number, overuseUsers: number, startedAtMs: number | null = start) =>
    overuseGraceStatus({ startedAtMs: startedAtMs ?? undefined, overuseGraceDays: 7, overuseUsers, nowMs });

  it('a grace that has not started is neither exhausted nor a risk', () => {
    expect(status(T0, 5, null)).toEqual({ started: false, exhausted: false, deactivationRisk: false });
  });

  it('an overuse within the grace is no deactivation risk', () => {
    expect(status(start + 7 * DAY_MS - 1, 3)).toEqual({
      started: true,
      startedAtMs: start,
      endMs: start + 7 * DAY_MS,
      exhausted: false,
      deactivationRisk: false,
    });
  });

  it('the grace is exhausted once overuseGraceDays have passed, overused or not', () => {
    expect(status(start + 7 * DAY_MS, 0)).toMatchObject({ exhausted: true, deactivationRisk: false });
  });

  it('an overuse with the grace exhausted is a deactivation risk', () => {
    expect(status(start + 7 * DAY_MS, 1)).toMatchObject({ exhausted: true, deactivationRisk: true });
  });
});

describe('utcDay', () => {
  it('names the UTC day, whatever the local time zone', () => {
    expect(utcDay(Date.UTC(2026, 0, 31, 23, 59, 59, 999))).toBe('2026-01-31');
    expect(utcDay(Date.UTC(2026, 1, 1, 0, 0, 0, 0))).toBe('2026-02-01');
  });
});

describe('ReferenceFarm', () => {
  it('the overuse-admission counter catches an overuse that ends before the next scrape', () => {
    const farm = new ReferenceFarm({ seats: 1 });
    farm.upsert('rdsh-01', conn('a', { id: 'a1' }), T0);
    farm.upsert('rdsh-01', conn('b', { id: 'b1' }), T0 + 1);
    farm.end('rdsh-01', 'b1', T0 + 2);
    expect(farm.usage().users).toBe(1);
    expect(farm.overuseAdmissions).toBe(1);
  });

  it('an admission counts each user who starts consuming over the seats, once', () => {
    const farm = new ReferenceFarm({ seats: 1 });
    farm.upsert('rdsh-01', conn('a', { id: 'a1' }), T0);
    expect(farm.overuseAdmissions).toBe(0);
    farm.upsert('rdsh-01', conn('b', { id: 'b1' }), T0);
    farm.upsert('rdsh-02', conn('b', { id: 'b2' }), T0);
    farm.upsert('rdsh-01', conn('b', { id: 'b1', state: 'disconnected' }), T0);
    expect(farm.overuseAdmissions).toBe(1);
    farm.upsert('rdsh-01', conn('c', { id: 'c1' }), T0);
    expect(farm.overuseAdmissions).toBe(2);
  });

  it('a user who leaves and returns while over the seats is admitted again', () => {
    const farm = new ReferenceFarm({ seats: 1 });
    farm.upsert('rdsh-01', conn('a', { id: 'a1' }), T0);
    farm.upsert('rdsh-01', conn('b', { id: 'b1' }), T0);
    farm.end('rdsh-01', 'b1', T0);
    farm.upsert('rdsh-01', conn('b', { id: 'b2' }), T0);
    expect(farm.overuseAdmissions).toBe(2);
  });

  it('a user who starts consuming within the seats is no admission', () => {
    const farm = new ReferenceFarm({ seats: 2 });
    farm.upsert('rdsh-01', conn('a', { id: 'a1' }), T0);
    farm.upsert('rdsh-01', conn('b', { id: 'b1' }), T0);
    farm.upsert('rdsh-01', adminDesktop('admin', T0, { id: 'x1' }), T0);
    expect(farm.overuseAdmissions).toBe(0);
  });

  it('a user pushed out of an exemption slot over the seats is an admission', () => {
    const farm = new ReferenceFarm({ seats: 1 });
    farm.upsert('rdsh-01', conn('a', { id: 'a1' }), T0);
    farm.upsert('rdsh-01', adminDesktop('adm1', T0 + 10, { id: 'x1' }), T0);
    farm.upsert('rdsh-01', adminDesktop('adm2', T0 + 20, { id: 'x2' }), T0);
    expect(farm.overuseAdmissions).toBe(0);
    // An earlier logon takes the first slot: adm2's desktop is now the third and consumes.
    farm.upsert('rdsh-01', adminDesktop('adm0', T0, { id: 'x0' }), T0);
    expect([...farm.usage().consumingUsers].sort()).toEqual(['a', 'adm2']);
    expect(farm.overuseAdmissions).toBe(1);
  });

  it('a snapshot applies its ends before its upserts', () => {
    const farm = new ReferenceFarm({ seats: 1 });
    farm.snapshot('rdsh-01', [conn('a', { id: 'a1' })], T0);
    farm.snapshot('rdsh-01', [conn('b', { id: 'b1' })], T0 + MINUTE);
    expect([...farm.usage().consumingUsers]).toEqual(['b']);
    expect(farm.overuseAdmissions).toBe(0);
  });

  it('a snapshot applies its upserts one by one in the order listed', () => {
    const farm = new ReferenceFarm({ seats: 1 });
    farm.snapshot('rdsh-01', [conn('a', { id: 'a1' }), conn('b', { id: 'b1' }), conn('c', { id: 'c1' })], T0);
    expect(farm.overuseAdmissions).toBe(2);
    expect(farm.overLimit()).toEqual(['b', 'c']);
  });

  it('the overuse grace starts at the first moment users exceed the seats', () => {
    const farm = new ReferenceFarm({ seats: 1 });
    farm.upsert('rdsh-01', conn('a'), T0);
    expect(farm.graceStartedAt).toBeUndefined();
    farm.upsert('rdsh-01', conn('b'), T0 + HOUR);
    expect(farm.graceStartedAt).toBe(T0 + HOUR);
    expect(farm.graceSeats).toBe(1);
  });

  it('the overuse grace starts once and restarts only when seats increase', () => {
    const farm = new ReferenceFarm({ seats: 2 });
    farm.upsert('rdsh-01', conn('a', { id: 'a1' }), T0);
    farm.upsert('rdsh-01', conn('b', { id: 'b1' }), T0);
    farm.upsert('rdsh-01', conn('c', { id: 'c1' }), T0 + HOUR);
    expect(farm.graceStartedAt).toBe(T0 + HOUR);
    // The overuse ends and comes back: the grace does not restart.
    farm.end('rdsh-01', 'c1', T0 + 2 * HOUR);
    farm.upsert('rdsh-01', conn('c', { id: 'c2' }), T0 + 3 * HOUR);
    expect(farm.graceStartedAt).toBe(T0 + HOUR);
    // Fewer or equal seats keep the start.
    farm.setSeats(1, T0 + 4 * HOUR);
    expect(farm.graceStartedAt).toBe(T0 + HOUR);
    farm.setSeats(2, T0 + 5 * HOUR);
    expect(farm.graceStartedAt).toBe(T0 + HOUR);
    expect(farm.graceSeats).toBe(2);
    // More seats than recorded reset it; with no overuse it stays not started.
    farm.setSeats(3, T0 + 6 * HOUR);
    expect(farm.graceStartedAt).toBeUndefined();
    expect(farm.graceSeats).toBeUndefined();
    // A later overuse starts a new grace, recording the seats of then.
    farm.upsert('rdsh-01', conn('d', { id: 'd1' }), T0 + 7 * HOUR);
    expect(farm.graceStartedAt).toBe(T0 + 7 * HOUR);
    expect(farm.graceSeats).toBe(3);
  });

  it('more seats that still leave the farm overused start a new grace at once', () => {
    const farm = new ReferenceFarm({ seats: 1 });
    for (const user of ['a', 'b', 'c']) farm.upsert('rdsh-01', conn(user), T0);
    expect(farm.graceStartedAt).toBe(T0);
    farm.setSeats(2, T0 + DAY_MS);
    expect(farm.graceStartedAt).toBe(T0 + DAY_MS);
    expect(farm.graceSeats).toBe(2);
  });

  it('lowering the seats below the users in use starts the grace', () => {
    const farm = new ReferenceFarm({ seats: 5 });
    farm.upsert('rdsh-01', conn('a'), T0);
    farm.upsert('rdsh-01', conn('b'), T0);
    farm.setSeats(1, T0 + HOUR);
    expect(farm.graceStartedAt).toBe(T0 + HOUR);
    expect(farm.graceSeats).toBe(1);
  });

  it('overuseGraceStartedAt seeds the grace once', () => {
    const seed = T0 - 3 * DAY_MS;
    const farm = new ReferenceFarm({ seats: 5, overuseGraceStartedAt: seed });
    farm.tick(T0);
    expect(farm.graceStartedAt).toBe(seed);
    expect(farm.graceSeats).toBe(5);
    // A later overuse keeps the seeded start.
    for (const user of ['a', 'b', 'c', 'd', 'e', 'f']) farm.upsert('rdsh-01', conn(user), T0 + HOUR);
    expect(farm.graceStartedAt).toBe(seed);
    // More seats reset the grace; the seed is not applied again.
    farm.setSeats(10, T0 + 2 * HOUR);
    expect(farm.graceStartedAt).toBeUndefined();
    farm.tick(T0 + 3 * HOUR);
    expect(farm.graceStartedAt).toBeUndefined();
  });

  it("a stale host's users still count and are unverified", () => {
    const farm = new ReferenceFarm({ seats: 10 });
    farm.connect('rdsh-01', T0);
    farm.connect('rdsh-02', T0);
    farm.upsert('rdsh-01', conn('alice'), T0);
    farm.upsert('rdsh-02', conn('bob'), T0);
    farm.disconnect('rdsh-02', T0 + MINUTE);
    expect(farm.usage().users).toBe(2);
    expect(farm.usage().unverifiedUsers).toBe(1);
    farm.connect('rdsh-02', T0 + 2 * MINUTE);
    expect(farm.usage().unverifiedUsers).toBe(0);
  });

  it('a user also on a live host is verified', () => {
    const farm = new ReferenceFarm({ seats: 10 });
    farm.connect('rdsh-01', T0);
    farm.upsert('rdsh-01', conn('alice'), T0);
    farm.upsert('rdsh-02', conn('alice'), T0);
    expect(farm.usage().users).toBe(1);
    expect(farm.usage().unverifiedUsers).toBe(0);
  });

  it("a retired host's connections stop counting until its next snapshot", () => {
    const farm = new ReferenceFarm({ seats: 10 });
    farm.connect('rdsh-01', T0);
    farm.upsert('rdsh-01', conn('alice', { id: 'a1' }), T0);
    farm.upsert('rdsh-02', conn('bob', { id: 'b1' }), T0);
    farm.retire('rdsh-02', T0 + DAY_MS);
    expect([...farm.usage().consumingUsers]).toEqual(['alice']);
    expect(farm.usage().connections.filter((c) => c.host === 'rdsh-02')).toEqual([]);
    // Upserts and ends to a retired host are ignored.
    farm.upsert('rdsh-02', conn('carol', { id: 'c1' }), T0 + DAY_MS + 1);
    farm.end('rdsh-02', 'b1', T0 + DAY_MS + 1);
    expect([...farm.usage().consumingUsers]).toEqual(['alice']);
    // Even a new connection of its agent does not bring it back; a snapshot does.
    farm.connect('rdsh-02', T0 + DAY_MS + 2);
    expect(farm.usage().users).toBe(1);
    farm.snapshot('rdsh-02', [conn('bob', { id: 'b1' }), conn('dave', { id: 'd1' })], T0 + DAY_MS + 3);
    expect([...farm.usage().consumingUsers].sort()).toEqual(['alice', 'bob', 'dave']);
    farm.upsert('rdsh-02', conn('carol', { id: 'c1' }), T0 + DAY_MS + 4);
    expect(farm.usage().users).toBe(4);
  });

  it('host names compare case-insensitively', () => {
    const farm = new ReferenceFarm({ seats: 10 });
    farm.upsert('RDSH-01', conn('alice', { id: 'a1' }), T0);
    farm.upsert('rdsh-01', adminDesktop('x', T0, { id: 'x1' }), T0);
    farm.upsert('Rdsh-01', adminDesktop('y', T0 + 1, { id: 'y1' }), T0);
    farm.upsert('rdsh-01', adminDesktop('z', T0 + 2, { id: 'z1' }), T0);
    expect(farm.hostViews()).toHaveLength(1);
    // One host: the third admin desktop consumes.
    expect([...farm.usage().consumingUsers].sort()).toEqual(['alice', 'z']);
    farm.end('rdsh-01', 'a1', T0 + 1);
    expect([...farm.usage().consumingUsers]).toEqual(['z']);
  });

  it('keeps the peak to date and the peak of each UTC day', () => {
    const day1 = Date.UTC(2026, 2, 10, 10);
    const day2 = Date.UTC(2026, 2, 11, 10);
    const farm = new ReferenceFarm({ seats: 10 });
    for (const user of ['a', 'b', 'c']) farm.upsert('rdsh-01', conn(user, { id: user }), day1);
    farm.end('rdsh-01', 'b', day1 + HOUR);
    farm.end('rdsh-01', 'c', day1 + HOUR);
    expect(farm).toMatchObject({ peakUsers: 3, peakUsersToday: 3 });
    expect(farm.usage().users).toBe(1);
    farm.tick(Date.UTC(2026, 2, 11, 0, 0, 1));
    expect(farm).toMatchObject({ peakUsers: 3, peakUsersToday: 1 });
    farm.upsert('rdsh-01', conn('d', { id: 'd' }), day2);
    expect(farm).toMatchObject({ peakUsers: 3, peakUsersToday: 2 });
    farm.end('rdsh-01', 'd', day2 + HOUR);
    expect(farm).toMatchObject({ peakUsers: 3, peakUsersToday: 2 });
    expect([...farm.dailyPeaks]).toEqual([
      ['2026-03-10', 3],
      ['2026-03-11', 2],
    ]);
  });

  // Known bug (reference-farm.ts, `change`/`tick`): on the first item of a new UTC day, today's peak
  // is seeded with the users in use *after* that item, so the users carried over midnight are lost
  // unless someone ticked at midnight. Flip to `it` once fixed.
  it("today's peak includes the users in use since midnight even without a tick at midnight", () => {
    const farm = new ReferenceFarm({ seats: 10 });
    farm.upsert('rdsh-01', conn('a', { id: 'a' }), Date.UTC(2026, 2, 10, 10));
    farm.upsert('rdsh-01', conn('b', { id: 'b' }), Date.UTC(2026, 2, 10, 11));
    // Two users from 00:00 to 08:00 on the 11th, then one leaves.
    farm.end('rdsh-01', 'b', Date.UTC(2026, 2, 11, 8));
    expect(farm.peakUsersToday).toBe(2);
    expect(farm.dailyPeaks.get('2026-03-11')).toBe(2);
  });

  it('overLimit returns the most recent overuseUsers users, oldest first', () => {
    const farm = new ReferenceFarm({ seats: 2 });
    expect(farm.overLimit()).toEqual([]);
    for (const [i, user] of ['a', 'b', 'c', 'd', 'e'].entries()) {
      farm.upsert('rdsh-01', conn(user, { id: user }), T0 + i);
    }
    expect(farm.overLimit()).toEqual(['c', 'd', 'e']);
    // 'c' leaves and comes back: it is now the most recent.
    farm.end('rdsh-01', 'c', T0 + 10);
    expect(farm.overLimit()).toEqual(['d', 'e']);
    farm.upsert('rdsh-01', conn('c', { id: 'c2' }), T0 + 11);
    expect(farm.overLimit()).toEqual(['d', 'e', 'c']);
    // A second connection of a consuming user does not move it.
    farm.upsert('rdsh-02', conn('d', { id: 'd2' }), T0 + 12);
    expect(farm.overLimit()).toEqual(['d', 'e', 'c']);
    farm.setSeats(5, T0 + 13);
    expect(farm.overLimit()).toEqual([]);
  });

  it("a host's first snapshot corrects nothing", () => {
    const farm = new ReferenceFarm({ seats: 10 });
    farm.upsert('rdsh-01', conn('a', { id: 'a1' }), T0);
    farm.snapshot('rdsh-01', [conn('b', { id: 'b1' }), conn('c', { id: 'c1' })], T0 + 1);
    expect(farm.snapshotCorrections).toBe(0);
    expect([...farm.usage().consumingUsers].sort()).toEqual(['b', 'c']);
  });

  it('a later snapshot counts the connections it adds, changes and ends', () => {
    const farm = new ReferenceFarm({ seats: 10 });
    const kept = conn('a', { id: 'kept' });
    const changed = conn('b', { id: 'changed' });
    farm.snapshot('rdsh-01', [kept, changed, conn('c', { id: 'ended' })], T0);
    farm.snapshot('rdsh-01', [kept, changed], T0 + 1);
    expect(farm.snapshotCorrections).toBe(1);
    farm.snapshot('rdsh-01', [{ ...kept }, { ...changed, state: 'disconnected' }, conn('d', { id: 'added' })], T0 + 2);
    expect(farm.snapshotCorrections).toBe(3);
    // A snapshot that agrees with what the farm holds corrects nothing.
    farm.snapshot('rdsh-01', [{ ...kept }, { ...changed, state: 'disconnected' }, conn('d', { id: 'added' })], T0 + 3);
    expect(farm.snapshotCorrections).toBe(3);
  });

  it('a snapshot correction counts per host, not per farm', () => {
    const farm = new ReferenceFarm({ seats: 10 });
    farm.snapshot('rdsh-01', [conn('a', { id: 'a1' })], T0);
    // rdsh-02's first snapshot corrects nothing even though rdsh-01 has had one.
    farm.snapshot('rdsh-02', [conn('b', { id: 'b1' })], T0);
    expect(farm.snapshotCorrections).toBe(0);
  });
});
