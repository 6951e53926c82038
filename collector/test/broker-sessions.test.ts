/**
 * importSessions: the broker's sessions as the snapshots of the per-source pseudo-hosts. Which
 * sessions count (source, state, user), how (id, kind, state, since, user name), and that a session
 * listed twice or in both lists is one connection.
 */
import { describe, expect, it } from 'vitest';
import { importSessions, type ImportedSource } from '../src/broker/broker-sessions.js';
import { readSessionsBody, type RasSession } from '../src/broker/session-reader.js';

const NOW = Date.parse('2031-03-10T12:00:00Z');
const EARLIER = Date.parse('2031-03-10T08:30:00Z');
const DOMAINS = { 'corp.example': 'CORP' };
const ALL: ImportedSource[] = ['vdi', 'pc', 'avd'];

/** Sessions as the reader makes them from `GET /api/RDSession` items (integer enums, ISO times). */
function listed(...items: Array<Record<string, unknown>>): RasSession[] {
  const list = readSessionsBody(
    items.map((item) => ({
      serverID: 10,
      user: 'CORP\\alice',
      state: 0,
      logonTime: new Date(EARLIER).toISOString(),
      ...item,
    })),
  );
  expect(list.rejected).toEqual([]);
  return list.sessions;
}

const VDI = 3;
const VDI_APP = 4;
const PC = 5;
const PC_APP = 6;

describe('importSessions', () => {
  it('applies VDI and PC sessions to their sources as non-admin RAS connections', () => {
    const sessions = listed(
      { sessionID: 1, type: VDI, user: 'CORP\\alice' },
      { sessionID: 2, type: VDI_APP, user: 'CORP\\bob', state: 4 },
      { sessionID: 3, type: PC, user: 'CORP\\carol', serverID: 11 },
      { sessionID: 4, type: PC_APP, user: 'CORP\\dave', serverID: 11 },
    );
    const imported = importSessions(sessions, ALL, DOMAINS, NOW);
    expect(imported.bySource).toEqual({
      vdi: [
        { id: '10:1', user: 'corp\\alice', admin: false, kind: 'desktop', via: 'ras', state: 'active', since: EARLIER },
        { id: '10:2', user: 'corp\\bob', admin: false, kind: 'app', via: 'ras', state: 'disconnected', since: EARLIER },
      ],
      pc: [
        { id: '11:3', user: 'corp\\carol', admin: false, kind: 'desktop', via: 'ras', state: 'active', since: EARLIER },
        { id: '11:4', user: 'corp\\dave', admin: false, kind: 'app', via: 'ras', state: 'active', since: EARLIER },
      ],
      avd: [],
    });
    expect(imported.skipped).toBe(0);
  });

  it('leaves out RD Session Host, admin, direct RDP, Unknown and undocumented types', () => {
    const types = [0, 1, 2, 9, 7, 8, 10, 42];
    const sessions = listed(...types.map((type, index) => ({ sessionID: index + 1, type })));
    const imported = importSessions(sessions, ALL, DOMAINS, NOW);
    expect(imported.bySource).toEqual({ vdi: [], pc: [], avd: [] });
    expect(imported.skipped).toBe(types.length);
  });

  it('imports only the sources the farm names', () => {
    const sessions = listed({ sessionID: 1, type: VDI }, { sessionID: 2, type: PC });
    const avd = listed({ sessionID: 3, type: 0 });
    const imported = importSessions(sessions, ['pc'], DOMAINS, NOW, avd);
    expect(imported.bySource.vdi).toEqual([]);
    expect(imported.bySource.pc.map((s) => s.id)).toEqual(['10:2']);
    expect(imported.bySource.avd).toEqual([]);
    expect(imported.skipped).toBe(2);
  });

  it('states: active, connected, connect-query and shadow are active; disconnected holds; the rest have no user', () => {
    const expected: Array<[number, 'active' | 'disconnected' | undefined]> = [
      [0, 'active'],
      [1, 'active'],
      [2, 'active'],
      [3, 'active'],
      [4, 'disconnected'],
      [5, undefined],
      [6, undefined],
      [7, undefined],
      [8, undefined],
      [9, undefined],
      // Not in the enum: RAS lists it, so it is more likely in use.
      [77, 'active'],
    ];
    const sessions = listed(...expected.map(([state], index) => ({ sessionID: index + 1, type: VDI, state })));
    const imported = importSessions(sessions, ALL, DOMAINS, NOW);
    const byId = new Map(imported.bySource.vdi.map((s) => [s.id, s.state]));
    for (const [index, [state, want]] of expected.entries()) {
      expect(byId.get(`10:${index + 1}`), `state ${state}`).toBe(want);
    }
    expect(imported.skipped).toBe(5);
  });

  it('a session without a state counts as active', () => {
    const sessions = listed({ sessionID: 1, type: PC, state: null });
    expect(importSessions(sessions, ALL, DOMAINS, NOW).bySource.pc[0]?.state).toBe('active');
  });

  it('no user, or a blank one, is no session', () => {
    const sessions = listed(
      { sessionID: 1, type: VDI, user: null },
      { sessionID: 2, type: VDI, user: '' },
      { sessionID: 3, type: VDI, user: '   ' },
    );
    const imported = importSessions(sessions, ALL, DOMAINS, NOW);
    expect(imported.bySource.vdi).toEqual([]);
    expect(imported.skipped).toBe(3);
  });

  it('user names: UPNs mapped by ras.upnDomains, normalized, unmapped UPNs counted', () => {
    const sessions = listed(
      { sessionID: 1, type: VDI, user: 'Alice@Corp.Example' },
      { sessionID: 2, type: VDI, user: ' CORP\\Bob ' },
      { sessionID: 3, type: VDI, user: 'eve@partner.example' },
      { sessionID: 4, type: PC, user: 'Frank@PARTNER.example' },
    );
    const imported = importSessions(sessions, ALL, DOMAINS, NOW);
    expect(imported.bySource.vdi.map((s) => s.user)).toEqual(['corp\\alice', 'corp\\bob', 'eve@partner.example']);
    expect(imported.bySource.pc.map((s) => s.user)).toEqual(['frank@partner.example']);
    expect(imported.unmappedUpns).toBe(2);
  });

  it('a user name longer than the protocol allows is cut to 256 characters', () => {
    const sessions = listed({ sessionID: 1, type: VDI, user: `CORP\\${'x'.repeat(400)}` });
    expect(importSessions(sessions, ALL, DOMAINS, NOW).bySource.vdi[0]?.user).toHaveLength(256);
  });

  it('since is the logon time, or the poll time when RAS gave none or one in the future', () => {
    const sessions = listed(
      { sessionID: 1, type: VDI },
      { sessionID: 2, type: VDI, logonTime: null },
      { sessionID: 3, type: VDI, logonTime: new Date(NOW + 60_000).toISOString() },
      { sessionID: 4, type: VDI, logonTime: new Date(NOW).toISOString() },
    );
    expect(importSessions(sessions, ALL, DOMAINS, NOW).bySource.vdi.map((s) => s.since)).toEqual([
      EARLIER,
      NOW,
      NOW,
      NOW,
    ]);
  });

  it('the id is serverID:sessionID, 0 for a server RAS did not name', () => {
    const sessions = listed({ sessionID: 5, type: VDI, serverID: null }, { sessionID: 5, type: VDI, serverID: 12 });
    expect(importSessions(sessions, ALL, DOMAINS, NOW).bySource.vdi.map((s) => s.id)).toEqual(['0:5', '12:5']);
  });

  it('a session listed twice is one connection: the first listing that counts', () => {
    const sessions = listed(
      { sessionID: 1, type: VDI, user: 'CORP\\alice', state: 6 },
      { sessionID: 1, type: VDI, user: 'CORP\\alice', state: 4 },
      { sessionID: 1, type: VDI, user: 'CORP\\alice', state: 0 },
      { sessionID: 2, type: PC, user: 'CORP\\bob' },
      { sessionID: 2, type: PC, user: 'CORP\\bob' },
    );
    const imported = importSessions(sessions, ALL, DOMAINS, NOW);
    expect(imported.bySource.vdi.map((s) => [s.id, s.state])).toEqual([['10:1', 'disconnected']]);
    expect(imported.bySource.pc.map((s) => s.id)).toEqual(['10:2']);
    expect(imported.skipped).toBe(3);
  });

  it('a session listed under two sources is one connection, in the source listed first', () => {
    const sessions = listed(
      { sessionID: 1, type: VDI, user: 'CORP\\alice' },
      { sessionID: 1, type: PC, user: 'CORP\\bob' },
    );
    const imported = importSessions(sessions, ALL, DOMAINS, NOW);
    expect(imported.bySource.vdi.map((s) => s.user)).toEqual(['corp\\alice']);
    expect(imported.bySource.pc).toEqual([]);
    expect(imported.skipped).toBe(1);
  });

  it('every session of the AVD list is AVD whatever its type, and the unfiltered copy is left out', () => {
    const avd = listed(
      { sessionID: 1, type: 0, user: 'CORP\\alice', serverID: 20 },
      { sessionID: 2, type: VDI, user: 'CORP\\bob', serverID: 20 },
    );
    const sessions = listed(
      // The same sessions as in the AVD list (RAS's unfiltered list holds every source).
      { sessionID: 1, type: 0, user: 'CORP\\alice', serverID: 20 },
      { sessionID: 2, type: VDI, user: 'CORP\\bob', serverID: 20 },
      { sessionID: 3, type: VDI, user: 'CORP\\carol', serverID: 20 },
    );
    const imported = importSessions(sessions, ALL, DOMAINS, NOW, avd);
    expect(imported.bySource.avd.map((s) => s.id)).toEqual(['20:1', '20:2']);
    expect(imported.bySource.vdi.map((s) => s.id)).toEqual(['20:3']);
    expect(imported.skipped).toBe(0);
  });

  it('an AVD session left out for its state is not imported from the unfiltered list either', () => {
    const avd = listed({ sessionID: 1, type: VDI, state: 6, serverID: 20 });
    const sessions = listed({ sessionID: 1, type: VDI, state: 6, serverID: 20 });
    const imported = importSessions(sessions, ALL, DOMAINS, NOW, avd);
    expect(imported.bySource).toEqual({ vdi: [], pc: [], avd: [] });
  });

  it('AVD sessions listed twice in the AVD list are one connection', () => {
    const avd = listed({ sessionID: 1, type: 0, serverID: 20 }, { sessionID: 1, type: 0, serverID: 20 });
    const imported = importSessions([], ALL, DOMAINS, NOW, avd);
    expect(imported.bySource.avd).toHaveLength(1);
    expect(imported.skipped).toBe(1);
  });

  it('AVD kinds: published applications are apps, desktops are desktops', () => {
    const types: Array<[number, 'desktop' | 'app']> = [
      [0, 'desktop'],
      [1, 'app'],
      [2, 'app'],
      [9, 'app'],
      [3, 'desktop'],
      [4, 'app'],
      [5, 'desktop'],
      [6, 'app'],
      [10, 'desktop'],
    ];
    const avd = listed(...types.map(([type], index) => ({ sessionID: index + 1, type, serverID: 20 })));
    const kinds = importSessions([], ALL, DOMAINS, NOW, avd).bySource.avd.map((s) => s.kind);
    expect(kinds).toEqual(types.map(([, kind]) => kind));
  });

  it('with avd not imported, its list imports nothing and takes nothing from the others', () => {
    const avd = listed({ sessionID: 1, type: VDI, serverID: 20 });
    const sessions = listed({ sessionID: 1, type: VDI, serverID: 20 });
    const imported = importSessions(sessions, ['vdi', 'pc'], DOMAINS, NOW, avd);
    expect(imported.bySource.avd).toEqual([]);
    // The poller does not ask for the AVD list then; given one, its sessions are still AVD ones.
    expect(imported.bySource.vdi).toEqual([]);
  });
});
