/**
 * The broker's sessions as the license engine takes an agent's: one list per imported source, each
 * applied as the snapshot of that source's pseudo-host (`broker/vdi`, `broker/pc`, `broker/avd`), so
 * that a user on an RD Session Host and on a VDI desktop is one user (docs/design.md §4, "Broker
 * connector").
 *
 * What is applied, and why (Parallels RAS Licensing Guide, "Parallels RAS licensing": RAS counts
 * concurrent users across every resource it brokers):
 * - A session with a logged-on user counts: `active` and `shadow` as active; `disconnected` as
 *   disconnected, which holds its license as on an RD Session Host (the farm's countDisconnected);
 *   `connected` and `connect-query` (a client reconnecting) as active. `idle`, `listen`, `reset`,
 *   `down` and `init` have no logged-on user and are left out, as the agent leaves them out.
 *   A state value the enum lacks counts as active: a session RAS lists is more likely in use.
 * - Every broker session is non-admin: the two free administrative desktops are an RD Session Host
 *   rule (an RDSH's console and its two admin sessions); a VDI desktop or a Remote PC has no such
 *   allowance.
 * - The connection id is `serverID:sessionID` (a session id is unique on its server only), the kind
 *   `app` for the application types (VDI app, PC app, and in the AVD list, which keeps its RDS-like
 *   types, published apps, application and remote apps) and `desktop` otherwise, via `ras`, since
 *   `logonTime` (or the time of the poll when RAS gave none or one in the future).
 */
import { normalizeUser, type Session } from '@rasmon/protocol';
import type { RasSession } from './session-reader.js';
import { brokerUserName } from './user-name.js';

/** The sources a farm may import (`ras.sessions`), in their pseudo-hosts' order. */
export const IMPORTED_SOURCES = ['vdi', 'pc', 'avd'] as const;
export type ImportedSource = (typeof IMPORTED_SOURCES)[number];

/** The pseudo-host of a source: a name no agent can claim (a hello's host has no `/`). */
export function brokerHost(source: ImportedSource): string {
  return `broker/${source}`;
}

/** Whether a host of the farm is a broker source's pseudo-host. */
export function isBrokerHost(host: string): boolean {
  return host.startsWith('broker/');
}

const LICENSE_STATE: Readonly<Record<string, Session['state'] | undefined>> = {
  active: 'active',
  shadow: 'active',
  connected: 'active',
  'connect-query': 'active',
  disconnected: 'disconnected',
  undocumented: 'active',
};

/** The session types that are a published application rather than a desktop. */
const APP_TYPES: ReadonlySet<RasSession['type']> = new Set([
  'published-apps',
  'application',
  'remote-apps',
  'vdi-app',
  'pc-app',
]);

export interface ImportedSessions {
  /** The sessions each imported source applies, by source. */
  readonly bySource: Readonly<Record<ImportedSource, Session[]>>;
  /** Sessions left out: not an imported source, no logged-on user, or no user name. */
  readonly skipped: number;
  /** Users listed as a UPN whose suffix ras.upnDomains does not map. */
  readonly unmappedUpns: number;
}

/** Which imported source a broker session belongs to, if any. */
function sourceOf(session: RasSession): ImportedSource | undefined {
  if (session.source === 'vdi' || session.source === 'pc') return session.source;
  return undefined;
}

/**
 * The sessions of the imported sources. `sessions` is the unfiltered list (vdi and pc by their
 * `type`); `avdSessions`, when the farm imports `avd`, the list asked with `Source=AVD`, whose every
 * session is AVD whatever its type says: a session in both lists counts once, as AVD.
 */
export function importSessions(
  sessions: readonly RasSession[],
  imported: readonly ImportedSource[],
  upnDomains: Readonly<Record<string, string>>,
  nowMs: number,
  avdSessions: readonly RasSession[] = [],
): ImportedSessions {
  const wanted = new Set(imported);
  const bySource: Record<ImportedSource, Session[]> = { vdi: [], pc: [], avd: [] };
  const seen = new Set<string>();
  let skipped = 0;
  let unmappedUpns = 0;
  const avdIds = new Set(avdSessions.map((session) => `${session.serverId ?? 0}:${session.sessionId}`));
  const listed: Array<[RasSession, ImportedSource | undefined]> = [
    ...avdSessions.map((session): [RasSession, ImportedSource] => [session, 'avd']),
    ...sessions
      .filter((session) => !avdIds.has(`${session.serverId ?? 0}:${session.sessionId}`))
      .map((session): [RasSession, ImportedSource | undefined] => [session, sourceOf(session)]),
  ];
  for (const [session, source] of listed) {
    const state = session.state === undefined ? 'active' : LICENSE_STATE[session.state];
    const user = session.user?.trim();
    if (source === undefined || !wanted.has(source) || state === undefined || !user) {
      skipped++;
      continue;
    }
    const id = `${session.serverId ?? 0}:${session.sessionId}`;
    // One id once: a broker that lists a session twice, under one source or two, must not make it
    // two connections (the id names the session on its server, whatever type it is listed with).
    if (seen.has(id)) {
      skipped++;
      continue;
    }
    seen.add(id);
    const name = brokerUserName(user, upnDomains);
    if (name.unmappedUpn) unmappedUpns++;
    bySource[source].push({
      id,
      user: normalizeUser(name.name).slice(0, 256),
      admin: false,
      kind: APP_TYPES.has(session.type) ? 'app' : 'desktop',
      via: 'ras',
      state,
      since: session.logonTime !== undefined && session.logonTime <= nowMs ? session.logonTime : nowMs,
    });
  }
  return { bySource, skipped, unmappedUpns };
}
