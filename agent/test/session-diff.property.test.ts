import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReferenceFarm, canonicalSession, normalizeUser, type Session } from '@rasmon/protocol';
import { SessionDiff } from '../src/session/session-diff.js';

const sessionArb: fc.Arbitrary<Session> = fc.record({
  id: fc.constantFrom('1', '2', '3', '4', '5', '6', '7'),
  user: fc.constantFrom('CORP\\alice', 'corp\\Alice', 'CORP\\bob', 'CORP\\carol', 'CORP\\adm'),
  admin: fc.boolean(),
  kind: fc.constantFrom('desktop' as const, 'app' as const),
  via: fc.constantFrom('ras' as const, 'rdp' as const),
  state: fc.constantFrom('active' as const, 'disconnected' as const),
  since: fc.integer({ min: 1, max: 5 }).map((n) => 1_700_000_000_000 + n),
});

const listArb = fc.uniqueArray(sessionArb, { selector: (session) => session.id, maxLength: 7 });

const normalized = (session: Session) => canonicalSession({ ...session, user: normalizeUser(session.user) });

describe('session diff engine', () => {
  it('for any sequence of session lists, its events applied to the reference model give the last list', () => {
    fc.assert(
      fc.property(
        fc.array(listArb, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 0, max: 3 }),
        (lists, seats) => {
          const diff = new SessionDiff();
          const farm = new ReferenceFarm({ seats });
          let now = 1_800_000_000_000;
          for (const list of lists) {
            for (const event of diff.next(list)) {
              now += 1;
              if (event.op === 'upsert')
                farm.upsert('rdsh-1', { ...event.session, user: normalizeUser(event.session.user) }, now);
              else farm.end('rdsh-1', event.id, now);
            }
            const held = farm
              .usage()
              .connections.map(({ host: _host, exempt: _exempt, consumes: _consumes, ...session }) =>
                normalized(session),
              );
            expect(held.sort()).toEqual(list.map(normalized).sort());
            expect(diff.sessions().map(canonicalSession).sort()).toEqual(list.map(canonicalSession).sort());
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('emits nothing when the list does not change, and ends before upserts', () => {
    const diff = new SessionDiff();
    const a: Session = {
      id: '1',
      user: 'CORP\\a',
      admin: false,
      kind: 'desktop',
      via: 'ras',
      state: 'active',
      since: 1,
    };
    const b: Session = { ...a, id: '2', user: 'CORP\\b' };
    expect(diff.next([a])).toEqual([{ op: 'upsert', session: a }]);
    expect(diff.next([a])).toEqual([]);
    const changed = { ...a, state: 'disconnected' as const };
    expect(diff.next([b, changed])).toEqual([
      { op: 'upsert', session: b },
      { op: 'upsert', session: changed },
    ]);
    expect(diff.next([b])).toEqual([{ op: 'end', id: '1' }]);
  });
});
