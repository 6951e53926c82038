/**
 * Whether a session's user is an administrator of the host, decided from the session's own token:
 * the token lists every group the user belongs to, local and domain, nested ones included, as
 * Windows resolved them at logon. So no directory query, ever, and an unreachable domain controller
 * cannot flip anyone. Decided once per logon (a logon's token does not change).
 */
import type { TokenGroup } from './wts-decode.js';

/** BUILTIN\Administrators, on every display language. */
export const ADMINISTRATORS_SID = 'S-1-5-32-544';

/** What a session's token tells: its groups, and the linked token's when UAC filtered it. */
export interface SessionTokenGroups {
  groups: readonly TokenGroup[];
  /** The full (elevated) token's groups, for a UAC-filtered token. */
  linked?: readonly TokenGroup[];
}

/**
 * True when the token (or its linked full token) holds one of `adminSids`. A UAC-filtered token
 * keeps Administrators as a deny-only group: the user still is a member, so any listing counts.
 */
export function tokenIsAdmin(token: SessionTokenGroups, adminSids: ReadonlySet<string>): boolean {
  const holds = (groups: readonly TokenGroup[]) => groups.some((group) => adminSids.has(group.sid.toUpperCase()));
  return holds(token.groups) || (token.linked !== undefined && holds(token.linked));
}

/**
 * The SIDs that make an administrator: Administrators plus the configured `adminGroups`, each a
 * SID or an account name resolved once through `lookup` (LookupAccountNameW). A name that does not
 * resolve is returned in `unresolved`; the caller may try it again later, never per poll.
 */
export function resolveAdminSids(
  adminGroups: readonly string[],
  lookup: (name: string) => string | undefined,
): { sids: Set<string>; unresolved: string[] } {
  const sids = new Set([ADMINISTRATORS_SID]);
  const unresolved: string[] = [];
  for (const group of adminGroups) {
    const name = group.trim();
    if (/^S-1-\d+(-\d+)*$/i.test(name)) sids.add(name.toUpperCase());
    else {
      const sid = lookup(name);
      if (sid) sids.add(sid.toUpperCase());
      else unresolved.push(name);
    }
  }
  return { sids, unresolved };
}

/**
 * The decision per logon. A logon is the session id with its logon time: a new logon in a reused
 * session id is asked again. `undefined` (the token could not be read) is remembered too, so a host
 * where the agent lacks the privilege is not asked again every poll.
 */
export class LogonAdminCache {
  private readonly decided = new Map<string, boolean | undefined>();

  /** The logon's decision, calling `decide` only the first time this logon is seen. */
  decide(logon: string, decide: () => boolean | undefined): boolean | undefined {
    if (this.decided.has(logon)) return this.decided.get(logon);
    const admin = decide();
    this.decided.set(logon, admin);
    return admin;
  }

  /** Forgets the logons not in `current` (they ended). */
  retain(current: ReadonlySet<string>): void {
    for (const logon of this.decided.keys()) if (!current.has(logon)) this.decided.delete(logon);
  }

  get size(): number {
    return this.decided.size;
  }
}
