import type { z } from 'zod';
import type { sessionSchema } from './frame-schema.js';

/** One connection: one session on one host (docs/design.md §2 rule 1), as the wire schema gives it. */
export type Session = z.output<typeof sessionSchema>;
/** Kind of a connection: a full desktop or a published application. */
export type SessionKind = Session['kind'];
/** How the connection reached the host: through RAS or as plain RDP. */
export type SessionVia = Session['via'];
/** A disconnected (not logged-off) session still holds its user's license. */
export type SessionState = Session['state'];
/** Where the user connects from; informational only. */
export type ClientInfo = NonNullable<Session['client']>;

/**
 * The form every host name is compared and stored in (docs/design.md §2 rule 1: host names compare
 * case-insensitively, as Windows does).
 */
export function normalizeHost(host: string): string {
  return host.toLowerCase();
}

/**
 * Normalizes a user name the way every rule compares users (docs/design.md §2 rule 4): trimmed, Unicode NFC,
 * locale-independent lower case. Returns the empty string for a name that is blank.
 */
export function normalizeUser(user: string): string {
  return user.trim().normalize('NFC').toLowerCase();
}

/**
 * The one serialization of a session that is stored and compared: fixed key order, `client`
 * only when it carries something. Two sessions are the same connection state exactly when
 * their canonical strings are equal.
 */
export function canonicalSession(session: Session): string {
  const record: Session = {
    id: session.id,
    user: session.user,
    admin: session.admin,
    kind: session.kind,
    via: session.via,
    state: session.state,
    since: session.since,
  };
  const client = session.client;
  if (client && (client.name !== undefined || client.address !== undefined)) {
    record.client = {};
    if (client.name !== undefined) record.client.name = client.name;
    if (client.address !== undefined) record.client.address = client.address;
  }
  return JSON.stringify(record);
}
