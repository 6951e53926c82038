/**
 * Whether a session's user is an administrator of the host, decided from the session's own token:
 * the token lists every group the user belongs to, local and domain, nested ones included, as
 * Windows resolved them at logon. So no directory query, ever, and an unreachable domain controller
 * cannot flip anyone. Decided once per logon (a logon's token does not change); a token that could not
 * be read is asked again at every poll until it answers.
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

/** One logon's administrator status as this poll knows it. */
export interface AdminStatus {
  /** True or false once a token answered; undefined while it has not (the session then consumes). */
  admin: boolean | undefined;
  /** The Win32 error of this poll's failed read, when it is the logon's first: log it, once. */
  firstFailure?: number;
  /** The token answered after earlier reads failed (that many): the admin status is now corrected. */
  answeredAfter?: number;
}

/**
 * The decision per logon. A logon is the session id with its logon time: a new logon in a reused
 * session id is asked again. A token that answered is remembered for the logon's life (a logon's
 * token does not change); a read that failed is not: the next poll asks again, until it answers.
 */
export class LogonAdminCache {
  private readonly decided = new Map<string, boolean>();
  /** Logons whose token has not answered yet, with the count of failed reads. */
  private readonly failing = new Map<string, number>();

  /**
   * The logon's status, calling `read` unless an answer is already known: a boolean, or the Win32
   * error of the read that failed.
   */
  decide(logon: string, read: () => boolean | { win32Error: number }): AdminStatus {
    const known = this.decided.get(logon);
    if (known !== undefined) return { admin: known };
    const answer = read();
    const failures = this.failing.get(logon) ?? 0;
    if (typeof answer !== 'boolean') {
      this.failing.set(logon, failures + 1);
      return failures === 0 ? { admin: undefined, firstFailure: answer.win32Error } : { admin: undefined };
    }
    this.decided.set(logon, answer);
    this.failing.delete(logon);
    return failures > 0 ? { admin: answer, answeredAfter: failures } : { admin: answer };
  }

  /** Forgets the logons not in `current` (they ended). */
  retain(current: ReadonlySet<string>): void {
    for (const logon of this.decided.keys()) if (!current.has(logon)) this.decided.delete(logon);
    for (const logon of this.failing.keys()) if (!current.has(logon)) this.failing.delete(logon);
  }

  /** Forgets every decision (new admin SIDs): each logon is asked again. */
  clear(): void {
    this.decided.clear();
  }

  get size(): number {
    return this.decided.size + this.failing.size;
  }
}
