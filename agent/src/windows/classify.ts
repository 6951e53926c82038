/**
 * Turns what a source read (RawSession) into protocol sessions: which sessions count at all, user
 * names with their domain, `ras` vs `rdp`, published app vs desktop, administrator or not.
 */
import type { Session } from '@rasmon/protocol';
import { inRanges, parseCidr, type Cidr } from './cidr.js';
import type { RawSession } from './raw-session.js';

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

const SKIPPED_STATES = new Set(['listen', 'down', 'init', 'reset']);

export class Classifier {
  private readonly gateways: Cidr[];
  private readonly gatewayNames: Set<string>;
  private readonly appProcesses: Set<string>;
  private readonly adminUsers: Set<string>;
  /** When a source cannot say when a session logged on: the first time it was seen. */
  private readonly firstSeen = new Map<string, number>();

  constructor(private readonly config: ClassifyConfig) {
    this.gateways = config.rasGateways.map(parseCidr);
    this.gatewayNames = new Set(config.rasClientNames.map((name) => name.toLowerCase()));
    this.appProcesses = new Set(config.appProcesses.map((name) => name.toLowerCase()));
    this.adminUsers = new Set(config.adminUsers.map((name) => name.toLowerCase()));
  }

  /** The sessions to report, in the order given; `nowMs` dates sessions with no known logon time. */
  classify(raw: readonly RawSession[], nowMs: number): Session[] {
    const sessions: Session[] = [];
    const seenKeys = new Set<string>();
    for (const entry of raw) {
      if (!entry.user.trim() || SKIPPED_STATES.has(entry.state)) continue;
      if (entry.sessionId === 0) continue;
      const console = entry.protocolType === 0 || entry.sessionName?.toLowerCase() === 'console';
      if (console && !this.config.includeConsole) continue;
      const user = this.qualify(entry);
      // A logon is this WTS id with this logon time; without one, this id with this user, dated
      // when first seen (kept stable for as long as this agent runs).
      const key = `${entry.sessionId}|${user.toLowerCase()}|${entry.logonText ?? ''}`;
      seenKeys.add(key);
      let since = entry.logonTime;
      if (since === undefined) {
        since = this.firstSeen.get(key) ?? nowMs;
        this.firstSeen.set(key, since);
      }
      const session: Session = {
        id: `${entry.sessionId}-${since}`,
        user,
        admin: entry.admin === true || this.adminUsers.has(user.toLowerCase()),
        kind: entry.processes?.some((name) => this.appProcesses.has(name.toLowerCase())) ? 'app' : 'desktop',
        via: this.via(entry),
        state: entry.state === 'disconnected' ? 'disconnected' : 'active',
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
    for (const key of this.firstSeen.keys()) if (!seenKeys.has(key)) this.firstSeen.delete(key);
    return sessions;
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
