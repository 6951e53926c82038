/**
 * The `wts` source over a scripted Windows (WtsCalls): what wine cannot show — user sessions, their
 * tokens, UAC-filtered admins, adminGroups — decided as on a real host, once per logon.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Classifier, CLASSIFY_DEFAULTS } from '../src/windows/classify.js';
import {
  ADMINISTRATORS_SID,
  LogonAdminCache,
  resolveAdminSids,
  tokenIsAdmin,
  type SessionTokenGroups,
} from '../src/windows/token-admin.js';
import { CONNECT_STATES, type ProcessEntry, type SessionEntry } from '../src/windows/wts-decode.js';
import { WtsSource } from '../src/windows/wts-source.js';
import type { WtsCalls } from '../src/windows/wtsapi.js';
import { answered, failed, type Win32Answer } from '../src/windows/win32-error.js';

const log = pino({ level: 'silent' });

/** The sixteen bytes of an IPv6 address written out in full (eight groups). */
const ipv6Bytes = (text: string) =>
  Buffer.from(text.split(':').flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));

/** A logger whose lines the test reads. */
function capturedLog() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}
const ms = (iso: string) => Date.parse(iso);
const fileTime = (at: number) => BigInt(at) * 10_000n + 116_444_736_000_000_000n;

interface FakeSession extends SessionEntry {
  logonTime?: number;
  clientName?: string;
  clientAddress?: string;
  protocolType?: number;
  /** The groups, or the Win32 error WTSQueryUserToken fails with. */
  token?: SessionTokenGroups | number;
  /** Logged off after the enumeration: every query fails with this error. */
  vanishedWith?: number;
}

/** A host whose sessions the test sets, counting the calls the source makes. */
class FakeHost implements WtsCalls {
  sessionList: FakeSession[] = [];
  processList: ProcessEntry[] = [];
  accounts = new Map<string, string>();
  readonly counts = { sessions: 0, processes: 0, query: 0, token: 0, lookup: 0 };

  sessions(): SessionEntry[] {
    this.counts.sessions += 1;
    return this.sessionList.map(({ sessionId, state, sessionName, userName, domainName }) => ({
      sessionId,
      state,
      ...(sessionName ? { sessionName } : {}),
      ...(userName ? { userName } : {}),
      ...(domainName ? { domainName } : {}),
    }));
  }

  processes(): ProcessEntry[] {
    this.counts.processes += 1;
    return this.processList;
  }

  query(sessionId: number, infoClass: number): Win32Answer<Buffer> {
    this.counts.query += 1;
    const session = this.sessionList.find((s) => s.sessionId === sessionId);
    if (!session) return failed(2);
    if (session.vanishedWith !== undefined) return failed(session.vanishedWith);
    switch (infoClass) {
      case 24: {
        // WTSINFOW: State 0, SessionId 4, …, LogonTime (FILETIME) 200.
        const info = Buffer.alloc(216);
        info.writeUInt32LE(CONNECT_STATES.indexOf(session.state), 0);
        info.writeUInt32LE(sessionId, 4);
        if (session.logonTime !== undefined) info.writeBigInt64LE(fileTime(session.logonTime), 200);
        return answered(info);
      }
      case 10:
        return answered(Buffer.from(`${session.clientName ?? ''}\0`, 'utf16le'));
      case 14: {
        // WTS_CLIENT_ADDRESS: AddressFamily 0, Address[20] 4; the address after two zero bytes.
        const address = Buffer.alloc(24);
        if (session.clientAddress?.includes(':')) {
          address.writeUInt32LE(23, 0);
          ipv6Bytes(session.clientAddress).copy(address, 6);
        } else if (session.clientAddress) {
          address.writeUInt32LE(2, 0);
          Buffer.from(session.clientAddress.split('.').map(Number)).copy(address, 6);
        }
        return answered(address);
      }
      case 16:
        return answered(Buffer.from([session.protocolType ?? 2, 0]));
      default:
        return failed(87);
    }
  }

  sessionTokenGroups(sessionId: number): Win32Answer<SessionTokenGroups> {
    this.counts.token += 1;
    const session = this.sessionList.find((s) => s.sessionId === sessionId);
    if (!session) return failed(2);
    const token = session.token ?? 1314;
    return typeof token === 'number' ? failed(token) : answered(token);
  }

  lookupAccountSid(name: string): string | undefined {
    this.counts.lookup += 1;
    return this.accounts.get(name.toLowerCase());
  }

  waitSystemEvent(): Promise<number | undefined> {
    return new Promise(() => {});
  }

  releaseWaits(): void {}
}

const group = (sid: string, attributes = 0x7) => ({ sid, attributes });
const USERS = group('S-1-5-32-545');
const HELPDESK = 'S-1-5-21-1-2-3-1107';

function source(host: FakeHost, options: { adminGroups?: string[]; rasGateways?: string[]; log?: pino.Logger } = {}) {
  const classifier = new Classifier({ ...CLASSIFY_DEFAULTS, rasGateways: options.rasGateways ?? [], domain: 'CORP' });
  return new WtsSource({ classifier, adminGroups: options.adminGroups ?? [], log: options.log ?? log, calls: host });
}

describe('the wts source', () => {
  it('classifies desktop, published app, admin and gateway as before, console and services left out', async () => {
    const host = new FakeHost();
    host.sessionList = [
      { sessionId: 0, state: 'disconnected' },
      {
        sessionId: 1,
        state: 'active',
        sessionName: 'Console',
        userName: 'local.admin',
        domainName: 'RDSH-01',
        protocolType: 0,
      },
      {
        sessionId: 2,
        state: 'active',
        sessionName: 'RDP-Tcp#7',
        userName: 'alice',
        domainName: 'CORP',
        logonTime: ms('2026-12-01T08:00:00Z'),
        clientName: 'RAS-GW-1',
        clientAddress: '10.0.0.5',
        token: { groups: [USERS] },
      },
      {
        sessionId: 3,
        state: 'disconnected',
        userName: 'adm.bob',
        domainName: 'CORP',
        logonTime: ms('2026-12-01T07:00:00Z'),
        // UAC-filtered: Administrators is deny-only in the session's token.
        token: { groups: [USERS, group(ADMINISTRATORS_SID, 0x10)] },
      },
      {
        sessionId: 4,
        state: 'active',
        sessionName: 'RDP-Tcp#9',
        userName: 'carol',
        domainName: 'CORP',
        logonTime: ms('2026-12-01T09:00:00Z'),
        clientName: 'LAPTOP-CAROL',
        clientAddress: '192.168.7.20',
        token: { groups: [USERS] },
      },
      { sessionId: 65536, state: 'listen', sessionName: 'RDP-Tcp' },
    ];
    host.processList = [
      { sessionId: 2, processId: 10, name: 'explorer.exe' },
      { sessionId: 4, processId: 11, name: 'rdpinit.exe' },
      { sessionId: 4, processId: 12, name: 'RdpShell.exe' },
    ];
    const sessions = await source(host, { rasGateways: ['10.0.0.0/24'] }).list(ms('2026-12-01T10:00:00Z'));
    expect(sessions).toEqual([
      {
        id: `2-${ms('2026-12-01T08:00:00Z')}`,
        user: 'CORP\\alice',
        admin: false,
        kind: 'desktop',
        via: 'ras',
        state: 'active',
        since: ms('2026-12-01T08:00:00Z'),
        client: { name: 'RAS-GW-1', address: '10.0.0.5' },
      },
      {
        id: `3-${ms('2026-12-01T07:00:00Z')}`,
        user: 'CORP\\adm.bob',
        admin: true,
        kind: 'desktop',
        via: 'rdp',
        state: 'disconnected',
        since: ms('2026-12-01T07:00:00Z'),
      },
      {
        id: `4-${ms('2026-12-01T09:00:00Z')}`,
        user: 'CORP\\carol',
        admin: false,
        kind: 'app',
        via: 'rdp',
        state: 'active',
        since: ms('2026-12-01T09:00:00Z'),
        client: { name: 'LAPTOP-CAROL', address: '192.168.7.20' },
      },
    ]);
  });

  it('asks for a token once per logon, again for a new logon in the same session id', async () => {
    const host = new FakeHost();
    const logon1 = ms('2026-12-01T08:00:00Z');
    host.sessionList = [
      {
        sessionId: 2,
        state: 'active',
        userName: 'alice',
        domainName: 'CORP',
        logonTime: logon1,
        token: { groups: [USERS] },
      },
    ];
    const wts = source(host);
    for (let poll = 0; poll < 5; poll += 1) expect((await wts.list(logon1 + poll * 1000))[0]!.admin).toBe(false);
    expect(host.counts.token).toBe(1);
    expect(host.counts.sessions).toBe(5);
    expect(host.counts.processes).toBe(5);

    // The group changes in the directory: the running logon keeps what its token said.
    host.sessionList[0]!.token = { groups: [USERS, group(ADMINISTRATORS_SID)] };
    expect((await wts.list(logon1 + 10_000))[0]!.admin).toBe(false);
    expect(host.counts.token).toBe(1);

    // Logoff, then a new logon that gets session id 2 again: decided afresh from its own token.
    host.sessionList = [];
    expect(await wts.list(logon1 + 20_000)).toEqual([]);
    const logon2 = logon1 + 30_000;
    host.sessionList = [
      {
        sessionId: 2,
        state: 'active',
        userName: 'alice',
        domainName: 'CORP',
        logonTime: logon2,
        token: { groups: [USERS, group(ADMINISTRATORS_SID)] },
      },
    ];
    expect((await wts.list(logon2))[0]!.admin).toBe(true);
    expect(host.counts.token).toBe(2);
  });

  it('counts a session whose token does not answer as non-admin, logs it once, and asks again until it answers', async () => {
    const host = new FakeHost();
    const { logger, lines } = capturedLog();
    const logon = ms('2026-12-01T08:00:00Z');
    host.sessionList = [
      { sessionId: 5, state: 'active', userName: 'adm.dave', domainName: 'CORP', logonTime: logon, token: 1008 },
    ];
    const wts = source(host, { log: logger });
    for (let poll = 0; poll < 3; poll += 1) {
      expect((await wts.list(logon + poll * 1000))[0]!.admin).toBe(false);
      expect(wts.adminUnknown()).toBe(1);
    }
    expect(host.counts.token).toBe(3);
    const warnings = lines.filter((line) => line.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ sessionId: 5, win32Error: 1008 });
    expect(JSON.stringify(lines)).not.toContain('dave');

    // The token answers: the admin status is corrected, and no longer asked.
    host.sessionList[0]!.token = { groups: [USERS, group(ADMINISTRATORS_SID)] };
    const [corrected] = await wts.list(logon + 5000);
    expect(corrected).toMatchObject({ id: `5-${logon}`, admin: true, since: logon });
    expect(wts.adminUnknown()).toBe(0);
    expect(lines.find((line) => line.level === 30)).toMatchObject({ sessionId: 5, admin: true, failedReads: 3 });
    await wts.list(logon + 6000);
    expect(host.counts.token).toBe(4);
  });

  it('logs an unreadable admin status once per logon, with the Win32 error (1314: not LocalSystem)', async () => {
    const host = new FakeHost();
    const { logger, lines } = capturedLog();
    host.sessionList = [
      { sessionId: 5, state: 'active', userName: 'dave', domainName: 'CORP', logonTime: 1, token: 1314 },
      { sessionId: 6, state: 'active', userName: 'erin', domainName: 'CORP', logonTime: 2, token: 1314 },
    ];
    const wts = source(host, { log: logger });
    for (let poll = 0; poll < 3; poll += 1) await wts.list(10_000);
    const warnings = lines.filter((line) => line.level === 40);
    expect(warnings.map((w) => [w.sessionId, w.win32Error])).toEqual([
      [5, 1314],
      [6, 1314],
    ]);
    expect(String(warnings[0]!.msg)).toContain('LocalSystem');
    expect(wts.adminUnknown()).toBe(2);
    // A new logon in session 5 is a new logon: logged again.
    host.sessionList[0]!.logonTime = 3;
    await wts.list(11_000);
    expect(lines.filter((line) => line.level === 40)).toHaveLength(3);
  });

  it('drops a session that ended between the enumeration and its queries, instead of inventing one', async () => {
    const host = new FakeHost();
    host.sessionList = [
      {
        sessionId: 2,
        state: 'active',
        userName: 'alice',
        domainName: 'CORP',
        logonTime: 1,
        token: { groups: [USERS] },
      },
      { sessionId: 3, state: 'active', userName: 'bob', domainName: 'CORP', vanishedWith: 2 },
      { sessionId: 4, state: 'active', userName: 'carol', domainName: 'CORP', vanishedWith: 7022 },
      // The queries answered, then the token's session was gone.
      { sessionId: 5, state: 'active', userName: 'dave', domainName: 'CORP', logonTime: 4, token: 2 },
    ];
    const wts = source(host);
    for (const now of [10_000, 20_000]) {
      expect((await wts.list(now)).map((s) => s.id)).toEqual(['2-1']);
      expect(wts.adminUnknown()).toBe(0);
    }
  });

  it('keeps one id for a user session whose logon time reads 0, poll after poll', async () => {
    const host = new FakeHost();
    host.sessionList = [
      { sessionId: 7, state: 'active', userName: 'frank', domainName: 'CORP', token: { groups: [USERS] } },
    ];
    const wts = source(host);
    const first = await wts.list(50_000);
    expect(first).toMatchObject([{ id: '7-50000', since: 50_000 }]);
    for (const now of [60_000, 70_000]) expect(await wts.list(now)).toEqual(first);
    expect(host.counts.token).toBe(1);
  });

  it('takes the state WTSINFOW reports, as WTS_CONNECTSTATE_CLASS documents it', async () => {
    const host = new FakeHost();
    host.sessionList = [
      { sessionId: 2, state: 'idle', userName: 'alice', domainName: 'CORP', logonTime: 1, token: { groups: [USERS] } },
      {
        sessionId: 3,
        state: 'connected',
        userName: 'bob',
        domainName: 'CORP',
        logonTime: 2,
        token: { groups: [USERS] },
      },
      {
        sessionId: 4,
        state: 'shadow',
        userName: 'carol',
        domainName: 'CORP',
        logonTime: 3,
        token: { groups: [USERS] },
      },
    ];
    expect((await source(host).list(10_000)).map((s) => [s.id, s.state])).toEqual([['4-3', 'active']]);
  });

  it('reads an IPv6 client address', async () => {
    const host = new FakeHost();
    host.sessionList = [
      {
        sessionId: 2,
        state: 'active',
        userName: 'alice',
        domainName: 'CORP',
        logonTime: 1,
        clientAddress: '2001:db8:0:0:0:0:0:5',
        token: { groups: [USERS] },
      },
    ];
    const [session] = await source(host, { rasGateways: ['2001:db8::/32'] }).list(10_000);
    expect(session).toMatchObject({ via: 'ras', client: { address: '2001:db8::5' } });
  });

  it('resolves adminGroups names once, SIDs as given, and counts their members as admins', async () => {
    const host = new FakeHost();
    host.accounts.set('corp\\rds-helpdesk', HELPDESK);
    host.sessionList = [
      {
        sessionId: 6,
        state: 'active',
        userName: 'erin',
        domainName: 'CORP',
        logonTime: 1,
        token: { groups: [USERS, group(HELPDESK)] },
      },
      {
        sessionId: 7,
        state: 'active',
        userName: 'frank',
        domainName: 'CORP',
        logonTime: 2,
        token: { groups: [USERS, group('S-1-5-21-9-9-9-500')] },
      },
      // Elevated admin whose linked full token holds the group, as UAC splits them.
      {
        sessionId: 8,
        state: 'active',
        userName: 'gina',
        domainName: 'CORP',
        logonTime: 3,
        token: { groups: [USERS], linked: [USERS, group(HELPDESK)] },
      },
    ];
    const wts = source(host, { adminGroups: ['CORP\\rds-helpdesk', 's-1-5-21-9-9-9-500'] });
    for (let poll = 0; poll < 4; poll += 1) {
      expect((await wts.list(10_000)).map((s) => [s.user, s.admin])).toEqual([
        ['CORP\\erin', true],
        ['CORP\\frank', true],
        ['CORP\\gina', true],
      ]);
    }
    expect(host.counts.lookup).toBe(1);
  });
});

describe('token-admin', () => {
  it('counts Administrators enabled or deny-only, in the token or its linked token', () => {
    const admins = new Set([ADMINISTRATORS_SID]);
    expect(tokenIsAdmin({ groups: [USERS] }, admins)).toBe(false);
    expect(tokenIsAdmin({ groups: [group(ADMINISTRATORS_SID, 0x10)] }, admins)).toBe(true);
    expect(tokenIsAdmin({ groups: [USERS], linked: [group(ADMINISTRATORS_SID)] }, admins)).toBe(true);
  });

  it('keeps names that did not resolve apart, Administrators always in', () => {
    const { sids, unresolved } = resolveAdminSids(['CORP\\gone', 'S-1-5-21-1-2-3-4'], () => undefined);
    expect([...sids]).toEqual([ADMINISTRATORS_SID, 'S-1-5-21-1-2-3-4']);
    expect(unresolved).toEqual(['CORP\\gone']);
  });

  it('forgets ended logons', () => {
    const cache = new LogonAdminCache();
    let asked = 0;
    const decide = () => ((asked += 1), true);
    cache.decide('2|100', decide);
    cache.decide('3|200', decide);
    cache.retain(new Set(['3|200']));
    expect(cache.size).toBe(1);
    cache.decide('3|200', decide);
    cache.decide('2|100', decide);
    expect(asked).toBe(3);
  });
});
