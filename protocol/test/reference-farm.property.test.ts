import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  DEFAULT_LIMITS,
  EXEMPT_PER_HOST,
  ReferenceFarm,
  normalizeUser,
  parseAgentFrame,
  type Session,
} from '../src/index.js';

/**
 * Random item sequences over three hosts, checked against an oracle written here from docs/design.md §2
 * without the model's helpers: users are told apart by a label, not by normalizeUser, and ids are
 * ordered by code points (which is UTF-8 byte order), not by Buffer.compare.
 */

const HOSTS = 3;
/** Spellings of each host name; the farm must treat them as one host. */
const HOST_SPELLINGS = [
  ['rdsh-a', 'RDSH-A'],
  ['rdsh-b', 'Rdsh-B'],
  ['rdsh-c', 'rdsh-C'],
] as const;

/** Spellings an agent might send, and the user each one is. */
const USER_SPELLINGS: readonly (readonly [string, string])[] = [
  ['CORP\\Alice', 'alice'],
  ['  corp\\alice ', 'alice'],
  ['CORP\\ALICE', 'alice'],
  ['corp\\bob', 'bob'],
  ['CORP\\Bob\t', 'bob'],
  ['corp\\r\u00e9mi', 'remi'],
  ['CORP\\RE\u0301MI', 'remi'],
  ['corp\\dana', 'dana'],
  ['corp\\eve', 'eve'],
];

const IDS = ['1', '2', '3', 'A', 'a', '\uFF21', '\u{1F600}'];
const BASE = Date.UTC(2026, 2, 10, 20, 0, 0);

interface OracleConnection {
  id: string;
  user: string;
  admin: boolean;
  kind: 'desktop' | 'app';
  state: 'active' | 'disconnected';
  since: number;
}

interface OracleHost {
  live: boolean;
  retired: boolean;
  connections: Map<string, OracleConnection>;
}

interface RawSession {
  id: string;
  spelling: number;
  admin: boolean;
  kind: 'desktop' | 'app';
  via: 'ras' | 'rdp';
  state: 'active' | 'disconnected';
  since: number;
}

type Op =
  | { op: 'upsert'; host: number; spelling: number; session: RawSession }
  | { op: 'end'; host: number; spelling: number; id: string }
  | { op: 'snapshot'; host: number; spelling: number; sessions: RawSession[] }
  | { op: 'retire'; host: number; spelling: number }
  | { op: 'connect'; host: number; spelling: number }
  | { op: 'disconnect'; host: number; spelling: number };

const rawSession: fc.Arbitrary<RawSession> = fc.record({
  id: fc.constantFrom(...IDS),
  spelling: fc.nat({ max: USER_SPELLINGS.length - 1 }),
  admin: fc.boolean(),
  kind: fc.constantFrom('desktop' as const, 'app' as const),
  via: fc.constantFrom('ras' as const, 'rdp' as const),
  state: fc.constantFrom('active' as const, 'disconnected' as const),
  since: fc.constantFrom(BASE - 2000, BASE - 1000, BASE),
});

const target = { host: fc.nat({ max: HOSTS - 1 }), spelling: fc.nat({ max: 1 }) };

const operation: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('upsert' as const), ...target, session: rawSession }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('end' as const), ...target, id: fc.constantFrom(...IDS) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('snapshot' as const),
      ...target,
      sessions: fc.uniqueArray(rawSession, { maxLength: 6, selector: (s) => s.id }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('retire' as const), ...target }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('connect' as const), ...target }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('disconnect' as const), ...target }) },
);

const step = fc.record({ op: operation, advanceMs: fc.nat({ max: 8 * 3_600_000 }) });

const wire = (raw: RawSession) => ({
  id: raw.id,
  user: USER_SPELLINGS[raw.spelling]![0],
  admin: raw.admin,
  kind: raw.kind,
  via: raw.via,
  state: raw.state,
  since: raw.since,
});

const label = (raw: RawSession): OracleConnection => ({
  id: raw.id,
  user: USER_SPELLINGS[raw.spelling]![1],
  admin: raw.admin,
  kind: raw.kind,
  state: raw.state,
  since: raw.since,
});

/** Sessions go through the wire parser, as the collector receives them. */
function parsedUpsert(raw: RawSession, seq: number, at: number): Session {
  const result = parseAgentFrame(
    JSON.stringify({ type: 'events', events: [{ seq, at, op: 'upsert', session: wire(raw) }] }),
    DEFAULT_LIMITS,
  );
  if (!result.ok || result.frame.type !== 'events') throw new Error('parser refused a valid frame');
  const event = result.frame.events[0];
  if (event?.op !== 'upsert') throw new Error('parser rejected a valid upsert');
  return event.session;
}

function parsedSnapshot(raws: RawSession[], seq: number, at: number): Session[] {
  const result = parseAgentFrame(
    JSON.stringify({ type: 'snapshot', seq, at, sessions: raws.map(wire) }),
    DEFAULT_LIMITS,
  );
  if (!result.ok || result.frame.type !== 'snapshot') throw new Error('parser refused a valid snapshot');
  expect(result.frame.rejected).toEqual([]);
  return result.frame.sessions;
}

function compareCodePoints(a: string, b: string): number {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

interface OracleView {
  consuming: Set<string>;
  verified: Set<string>;
  exempt: number;
}

function oracleView(hosts: OracleHost[], countDisconnected: boolean): OracleView {
  const consuming = new Set<string>();
  const verified = new Set<string>();
  let exempt = 0;
  for (const host of hosts) {
    if (host.retired) continue;
    const counts = (c: OracleConnection) => countDisconnected || c.state === 'active';
    const eligible = [...host.connections.values()]
      .filter((c) => c.admin && c.kind === 'desktop' && counts(c))
      .sort((a, b) => a.since - b.since || compareCodePoints(a.id, b.id))
      .slice(0, 2)
      .map((c) => c.id);
    exempt += eligible.length;
    for (const c of host.connections.values()) {
      if (eligible.includes(c.id) || !counts(c)) continue;
      consuming.add(c.user);
      if (host.live) verified.add(c.user);
    }
  }
  return { consuming, verified, exempt };
}

describe('ReferenceFarm on random item sequences', () => {
  it('user spellings of one user normalize alike, and of different users differently', () => {
    const byLabel = new Map<string, Set<string>>();
    for (const [spelling, user] of USER_SPELLINGS) {
      byLabel.set(user, (byLabel.get(user) ?? new Set()).add(normalizeUser(spelling)));
    }
    const normalized = [...byLabel.values()].map((set) => [...set]);
    expect(normalized.every((forms) => forms.length === 1)).toBe(true);
    expect(new Set(normalized.flat()).size).toBe(byLabel.size);
  });

  it('stays consistent with an independent count of users, exemptions, peaks and overuse', () => {
    const labelOf = new Map(USER_SPELLINGS.map(([spelling, user]) => [normalizeUser(spelling), user]));
    fc.assert(
      fc.property(
        fc.nat({ max: 4 }),
        fc.boolean(),
        fc.array(step, { minLength: 1, maxLength: 40 }),
        (seats, countDisconnected, steps) => {
          const farm = new ReferenceFarm({ seats, countDisconnected });
          const hosts: OracleHost[] = Array.from({ length: HOSTS }, () => ({
            live: false,
            retired: false,
            connections: new Map(),
          }));
          let now = BASE;
          let seq = 0;
          let admissions = 0;
          for (const { op, advanceMs } of steps) {
            now += advanceMs;
            seq += 1;
            const name = HOST_SPELLINGS[op.host]![op.spelling]!;
            const host = hosts[op.host]!;
            switch (op.op) {
              case 'upsert':
                farm.upsert(name, parsedUpsert(op.session, seq, now), now);
                if (!host.retired) host.connections.set(op.session.id, label(op.session));
                break;
              case 'end':
                farm.end(name, op.id, now);
                if (!host.retired) host.connections.delete(op.id);
                break;
              case 'snapshot':
                farm.snapshot(name, parsedSnapshot(op.sessions, seq, now), now);
                host.retired = false;
                host.connections = new Map(op.sessions.map((s) => [s.id, label(s)]));
                break;
              case 'retire':
                farm.retire(name, now);
                host.retired = true;
                host.connections.clear();
                break;
              case 'connect':
                farm.connect(name, now);
                host.live = true;
                break;
              case 'disconnect':
                farm.disconnect(name, now);
                host.live = false;
                break;
            }

            const usage = farm.usage();
            const expected = oracleView(hosts, countDisconnected);
            expect(farm.hostViews().length).toBeLessThanOrEqual(HOSTS);
            expect(usage.users).toBe(expected.consuming.size);
            expect(new Set([...usage.consumingUsers].map((u) => labelOf.get(u)))).toEqual(expected.consuming);
            expect(usage.unverifiedUsers).toBe(
              [...expected.consuming].filter((user) => !expected.verified.has(user)).length,
            );
            expect(usage.overuseUsers).toBe(Math.max(0, usage.users - seats));
            expect(usage.exemptConnections).toBe(expected.exempt);
            expect(usage.exemptConnections).toBeLessThanOrEqual(EXEMPT_PER_HOST * HOSTS);
            expect(farm.peakUsers).toBeGreaterThanOrEqual(farm.peakUsersToday);
            expect(farm.peakUsersToday).toBeGreaterThanOrEqual(usage.users);

            const overLimit = farm.overLimit();
            expect(overLimit).toHaveLength(usage.overuseUsers);
            expect(new Set(overLimit).size).toBe(overLimit.length);
            for (const user of overLimit) expect(usage.consumingUsers.has(user)).toBe(true);

            // With fixed seats, every user over the seats got there through an admission.
            expect(farm.overuseAdmissions).toBeGreaterThanOrEqual(admissions);
            admissions = farm.overuseAdmissions;
            expect(admissions).toBeGreaterThanOrEqual(usage.overuseUsers);
            if (usage.overuseUsers > 0) expect(farm.graceStartedAt).toBeDefined();
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
