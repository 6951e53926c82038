/**
 * Turns what a source read (RawSession) into protocol sessions: which sessions count at all, user
 * names with their domain, `ras` vs `rdp`, published app vs desktop, administrator or not.
 */
import type { Session } from '@rasmon/protocol';
import { inRanges, parseCidr, type Cidr } from './cidr.js';
import type { RawSession, RawState } from './raw-session.js';

export interface ClassifyConfig {
  /** Put before user names that have no domain (`alice` → `CORP\alice`). */
  domain?: string;
  /**
   * Client addresses (as the host sees them) of RAS gateways: a session from one of these ranges is
   * `ras`, any other is `rdp`. When empty, every session is `ras`, which on a RAS host is nearly
   * always right and never changes what is licensed (docs/design.md §2 rule 2 treats both alike).
   */
  rasGateways: string[];
  /** Client names (any case) that also mean `ras`, e.g. the gateways' names. */
  rasClientNames: string[];
  /** Processes that mark a published-application session (RemoteApp shells). */
  appProcesses: string[];
  /** Accounts (`DOMAIN\user`, any case) that are administrators besides what the source reports. */
  adminUsers: string[];
  /** Report the physical console session too (docs/design.md §2 rule 1 leaves it out unless configured). */
  includeConsole: boolean;
}

export const CLASSIFY_DEFAULTS: Readonly<ClassifyConfig> = Object.freeze({
  rasGateways: [],
  rasClientNames: [],
  appProcesses: ['rdpinit.exe', 'rdpshell.exe'],
  adminUsers: [],
  includeConsole: false,
});

/**
 * What each WTS_CONNECTSTATE_CLASS state means for a license (the states as documented:
 * https://learn.microsoft.com/windows/win32/api/wtsapi32/ne-wtsapi32-wts_connectstate_class).
 * A license is held by a user who is logged on (docs/design.md §2): connected to the session
 * (`active`) or not (`disconnected`, rule 3).
 * - WTSActive: a user is logged on and connected. WTSShadow: a logged-on session shadowing another;
 *   its user is logged on and connected too. Both `active`.
 * - WTSDisconnected: a user is logged on, the client is gone: `disconnected`, still holding.
 * - WTSConnected and WTSConnectQuery: a client is connected or connecting, no logon is done yet (the
 *   logon screen): not a session. A logon already reported keeps its last state through them, as a
 *   disconnected user reconnecting passes through them while still logged on.
 * - WTSIdle (waiting for a client), WTSListen, WTSReset, WTSDown, WTSInit: no logged-on user.
 */
const LICENSE_STATE: Readonly<Record<RawState, 'active' | 'disconnected' | 'keep' | undefined>> = {
  active: 'active',
  shadow: 'active',
  disconnected: 'disconnected',
  connected: 'keep',
  connectquery: 'keep',
  idle: undefined,
  listen: undefined,
  reset: undefined,
  down: undefined,
  init: undefined,
};

export class Classifier {
  private readonly gateways: Cidr[];
  private readonly gatewayNames: Set<string>;
  private readonly appProcesses: Set<string>;
  private readonly adminUsers: Set<string>;
  /**
   * Per logon (`sessionId|user|logon`): when it was first seen (the `since` of a logon whose time
   * the source cannot tell) and the state last reported.
   */
  private readonly logons = new Map<string, { firstSeen: number; state?: 'active' | 'disconnected' }>();

  constructor(private readonly config: ClassifyConfig) {
    this.gateways = config.rasGateways.map(parseCidr);
    this.gatewayNames = new Set(config.rasClientNames.map((name) => name.toLowerCase()));
    this.appProcesses = new Set(config.appProcesses.map((name) => name.toLowerCase()));
    this.adminUsers = new Set(config.adminUsers.map((name) => name.toLowerCase()));
  }

  /**
   * The sessions an earlier run of the agent reported (its journal): a logon whose time the source
   * cannot tell keeps the `since`, and so the id, it had then.
   */
  resume(previous: readonly Session[]): void {
    for (const session of previous) {
      const sessionId = /^(\d+)-/.exec(session.id)?.[1];
      if (sessionId === undefined) continue;
      const key = `${sessionId}|${session.user.toLowerCase()}|`;
      if (!this.logons.has(key)) this.logons.set(key, { firstSeen: session.since, state: session.state });
    }
  }

  /** The sessions to report, in the order given; `nowMs` dates sessions with no known logon time. */
  classify(raw: readonly RawSession[], nowMs: number): Session[] {
    const sessions: Session[] = [];
    const seenKeys = new Set<string>();
    for (const entry of raw) {
      if (!entry.user.trim() || LICENSE_STATE[entry.state] === undefined) continue;
      if (entry.sessionId === 0) continue;
      const console = this.isConsole(entry);
      if (console && !this.config.includeConsole) continue;
      const user = this.qualify(entry);
      // A logon is this WTS id with this logon time; without one, this id with this user, dated
      // when first seen (kept by the journal across restarts, see resume).
      const key = `${entry.sessionId}|${user.toLowerCase()}|${entry.logonTime ?? entry.logonText ?? ''}`;
      let logon = this.logons.get(key);
      const state = LICENSE_STATE[entry.state];
      const reported = state === 'keep' ? logon?.state : state;
      if (reported === undefined) continue;
      seenKeys.add(key);
      if (!logon) this.logons.set(key, (logon = { firstSeen: nowMs }));
      logon.state = reported;
      const since = entry.logonTime ?? logon.firstSeen;
      const session: Session = {
        id: `${entry.sessionId}-${since}`,
        user,
        admin: entry.admin === true || this.adminUsers.has(user.toLowerCase()),
        kind: entry.processes?.some((name) => this.appProcesses.has(name.toLowerCase())) ? 'app' : 'desktop',
        via: console ? 'rdp' : this.via(entry),
        state: reported,
        since,
      };
      if (entry.clientName || entry.clientAddress) {
        session.client = {
          ...(entry.clientName ? { name: entry.clientName } : {}),
          ...(entry.clientAddress ? { address: entry.clientAddress } : {}),
        };
      }
      sessions.push(session);
    }
    for (const key of this.logons.keys()) if (!seenKeys.has(key)) this.logons.delete(key);
    return sessions;
  }

  /**
   * The physical console. With `includeConsole` it is reported `via: rdp`: `via` tells whether a
   * connection came through RAS, and the console never does (the protocol has no third value; the
   * rules treat both alike).
   */
  private isConsole(entry: RawSession): boolean {
    return entry.protocolType === 0 || entry.sessionName?.toLowerCase() === 'console';
  }

  private qualify(entry: RawSession): string {
    const user = entry.user.trim();
    if (user.includes('\\') || user.includes('@')) return user;
    const domain = entry.domain?.trim() || this.config.domain;
    return domain ? `${domain}\\${user}` : user;
  }

  private via(entry: RawSession): 'ras' | 'rdp' {
    if (this.gateways.length === 0 && this.gatewayNames.size === 0) return 'ras';
    if (entry.clientAddress && inRanges(entry.clientAddress, this.gateways)) return 'ras';
    if (entry.clientName && this.gatewayNames.has(entry.clientName.toLowerCase())) return 'ras';
    return 'rdp';
  }
}
