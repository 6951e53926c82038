/**
 * `GET /api/RDSession` read into typed sessions.
 *
 * Source: docs.parallels.com, RAS REST API guide, "RD Sessions" reference (api-reference/rd-sessions,
 * "Retrieve one or multiple RD Sessions, from different sources such as RDS, VDI, and AVD"), whose
 * example item gives `sessionID` and `serverID` as integers, `ip` and `user` as strings, `logonTime` as
 * an ISO-8601 date-time ("2025-04-06T01:14:14.612Z"), and `type`, `state` and `protocol` as integer
 * enums:
 * - type (RDP Session Type): 0 = Desktop, 1 = PublishedApps, 2 = Application, 3 = VDI, 4 = VDIApp,
 *   5 = PC, 6 = PCApp, 7 = Admin, 8 = Unknown, 9 = RemoteApps, 10 = DirectRDP (-1 = All is a filter);
 * - state (Session State): 0 = Active, 1 = Connected, 2 = ConnectQuery, 3 = Shadow, 4 = Disconnected,
 *   5 = Idle, 6 = Listen, 7 = Reset, 8 = Down, 9 = Init (-1 = All);
 * - protocol: 0 = Console, 2 = RDP, 10 = RDP_UDP.
 * Not verified: how `user` is spelled (DOMAIN\user or a UPN; the pages show only "text"), and the
 * values of the `Source` query parameter (RDSessionSource), which the pages found do not list. The
 * session's source is therefore derived from its documented `type`; AVD sessions have no type of
 * their own there and cannot be told apart from RDS ones by it.
 */
import { BrokerError } from './broker-error.js';
import { FieldError, optionalInteger, optionalIsoTime, optionalText, type Fields } from './ras-fields.js';

export const SESSION_TYPES = {
  0: 'desktop',
  1: 'published-apps',
  2: 'application',
  3: 'vdi',
  4: 'vdi-app',
  5: 'pc',
  6: 'pc-app',
  7: 'admin',
  8: 'unknown',
  9: 'remote-apps',
  10: 'direct-rdp',
} as const;
export type SessionTypeName = (typeof SESSION_TYPES)[keyof typeof SESSION_TYPES];

export const SESSION_STATES = {
  0: 'active',
  1: 'connected',
  2: 'connect-query',
  3: 'shadow',
  4: 'disconnected',
  5: 'idle',
  6: 'listen',
  7: 'reset',
  8: 'down',
  9: 'init',
} as const;
export type SessionStateName = (typeof SESSION_STATES)[keyof typeof SESSION_STATES];

export const SESSION_PROTOCOLS = { 0: 'console', 2: 'rdp', 10: 'rdp-udp' } as const;
export type SessionProtocolName = (typeof SESSION_PROTOCOLS)[keyof typeof SESSION_PROTOCOLS];

/**
 * Where a session runs, from its type: `rds` (desktops and applications published from RD Session
 * Hosts), `vdi` and `pc` (their desktops and applications), `other` (admin, direct RDP, the enum's own
 * Unknown), `undocumented` (a type value the enum lacks).
 */
export type SessionSource = 'rds' | 'vdi' | 'pc' | 'other' | 'undocumented';

const SOURCE_BY_TYPE: Record<SessionTypeName, SessionSource> = {
  desktop: 'rds',
  'published-apps': 'rds',
  application: 'rds',
  'remote-apps': 'rds',
  vdi: 'vdi',
  'vdi-app': 'vdi',
  pc: 'pc',
  'pc-app': 'pc',
  admin: 'other',
  unknown: 'other',
  'direct-rdp': 'other',
};

export interface RasSession {
  readonly sessionId: number;
  /** `type` by name, or `undocumented` with the number as sent in `typeCode`. */
  readonly type: SessionTypeName | 'undocumented';
  readonly typeCode: number;
  readonly source: SessionSource;
  readonly serverId?: number;
  /** As RAS spells it; see the note above. */
  readonly user?: string;
  readonly ip?: string;
  /** `state` by name, or `undocumented`. */
  readonly state?: SessionStateName | 'undocumented';
  readonly protocol?: SessionProtocolName | 'undocumented';
  /** ms since the epoch. */
  readonly logonTime?: number;
}

/** A list item set aside because a field has another shape than the documents give it. */
export interface RejectedSession {
  readonly index: number;
  readonly field: string;
  readonly problem: string;
}

export interface SessionList {
  readonly sessions: RasSession[];
  readonly rejected: RejectedSession[];
  /** How many sessions carry a `type` value the enum does not list (counted, kept, source `undocumented`). */
  readonly undocumentedTypes: number;
}

function byCode<N extends string>(table: Record<number, N>, code: number | undefined): N | 'undocumented' | undefined {
  if (code === undefined) return undefined;
  return table[code] ?? 'undocumented';
}

function readSession(item: unknown, index: number): RasSession {
  const at = (name: string) => `[${index}].${name}`;
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    throw new FieldError(`[${index}]`, 'must be an object');
  }
  const fields = item as Fields;
  const sessionId = optionalInteger(fields, 'sessionID', at('sessionID'));
  if (sessionId === undefined) throw new FieldError(at('sessionID'), 'is missing');
  const typeCode = optionalInteger(fields, 'type', at('type'));
  if (typeCode === undefined) throw new FieldError(at('type'), 'is missing');
  const type = byCode<SessionTypeName>(SESSION_TYPES, typeCode) ?? 'undocumented';
  const session: Record<string, unknown> = {
    sessionId,
    type,
    typeCode,
    source: type === 'undocumented' ? 'undocumented' : SOURCE_BY_TYPE[type],
    serverId: optionalInteger(fields, 'serverID', at('serverID')),
    user: optionalText(fields, 'user', at('user')),
    ip: optionalText(fields, 'ip', at('ip')),
    state: byCode<SessionStateName>(SESSION_STATES, optionalInteger(fields, 'state', at('state'))),
    protocol: byCode<SessionProtocolName>(SESSION_PROTOCOLS, optionalInteger(fields, 'protocol', at('protocol'))),
    logonTime: optionalIsoTime(fields, 'logonTime', at('logonTime')),
  };
  for (const key of Object.keys(session)) if (session[key] === undefined) delete session[key];
  return session as unknown as RasSession;
}

/**
 * Reads the body of `GET /api/RDSession`. A list item with a malformed field is set aside in
 * `rejected` with the field named, and the rest are read: one odd session must not hide the others.
 *
 * @throws {@link BrokerError} `bad_response` when the body is not a list.
 */
export function readSessionsBody(body: unknown): SessionList {
  if (!Array.isArray(body)) {
    throw new BrokerError('bad_response', 'GET /api/RDSession: the answer is not a JSON list', { field: '' });
  }
  const sessions: RasSession[] = [];
  const rejected: RejectedSession[] = [];
  body.forEach((item, index) => {
    try {
      sessions.push(readSession(item, index));
    } catch (err) {
      if (!(err instanceof FieldError)) throw err;
      rejected.push({ index, field: err.field, problem: err.problem });
    }
  });
  const undocumentedTypes = sessions.filter((s) => s.type === 'undocumented').length;
  return { sessions, rejected, undocumentedTypes };
}
