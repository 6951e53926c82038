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
import type { ProcessEntry, SessionEntry } from '../src/windows/wts-decode.js';
import { WtsSource } from '../src/windows/wts-source.js';
import type { WtsCalls } from '../src/windows/wtsapi.js';

const log = pino({ level: 'silent' });
const ms = (iso: string) => Date.parse(iso);
const fileTime = (at: number) => BigInt(at) * 10_000n + 116_444_736_000_000_000n;

interface FakeSession extends SessionEntry {
  logonTime?: number;
  clientName?: string;
  clientAddress?: string;
  protocolType?: number;
  token?: SessionTokenGroups;
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

  query(sessionId: number, infoClass: number): Buffer | undefined {
    this.counts.query += 1;
    const session = this.sessionList.find((s) => s.sessionId === sessionId);
    if (!session) return undefined;
    switch (infoClass) {
      case 24: {
        const info = Buffer.alloc(216);
        info.writeUInt32LE(sessionId, 4);
        if (session.logonTime !== undefined) info.writeBigInt64LE(fileTime(session.logonTime), 200);
        return info;
      }
      case 10:
        return Buffer.from(`${session.clientName ?? ''}\0`, 'utf16le');
      case 14: {
        const address = Buffer.alloc(24);
        if (session.clientAddress) {
          address.writeUInt32LE(2, 0);
          Buffer.from(session.clientAddress.split('.').map(Number)).copy(address, 6);
        }
        return address;
      }
      case 16:
        return Buffer.from([session.protocolType ?? 2, 0]);
      default:
        return undefined;
    }
  }

  sessionTokenGroups(sessionId: number): SessionTokenGroups | undefined {
    this.counts.token += 1;
    return this.sessionList.find((s) => s.sessionId === sessionId)?.token;
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

function source(host: FakeHost, options: { adminGroups?: string[]; rasGateways?: string[] } = {}) {
  const classifier = new Classifier({ ...CLASSIFY_DEFAULTS, rasGateways: options.rasGateways ?? [], domain: 'CORP' });
  return new WtsSource({ classifier, adminGroups: options.adminGroups ?? [], log, calls: host });
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

  it('leaves admin unknown without a token (not SYSTEM) and does not ask again each poll', async () => {
    const host = new FakeHost();
    host.sessionList = [{ sessionId: 5, state: 'active', userName: 'dave', domainName: 'CORP', logonTime: 1 }];
    const wts = source(host);
    for (let poll = 0; poll < 3; poll += 1) expect((await wts.list(1000))[0]!.admin).toBe(false);
    expect(wts.read().map((s) => s.admin)).toEqual([undefined]);
    expect(host.counts.token).toBe(1);
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
