/**
 * The reference license model: docs/design.md §2 stated once, as plain functions over plain data. The
 * collector implements the same rules incrementally in Lua; tests hold it to these functions.
 */
import type { Session } from './session.js';

/** What the farm knows of one host's agent (docs/design.md §2 rule 10). */
export interface HostView {
  host: string;
  /** The agent holds a live lease. A host that is not live is stale; its connections still count. */
  live: boolean;
  /** Retired: its connections stop counting until its agent's next snapshot. */
  retired: boolean;
  /** Its connections, users already normalized (docs/design.md §2 rule 4). */
  connections: readonly Session[];
}

export interface UsageInput {
  seats: number;
  /** Farm option; when false, disconnected connections neither count nor take exemption slots. */
  countDisconnected: boolean;
  hosts: readonly HostView[];
}

export interface ConnectionUsage extends Session {
  host: string;
  /** An admin desktop among the first two eligible on its host (docs/design.md §2 rule 2). */
  exempt: boolean;
  /** Takes (part of) its user's license. */
  consumes: boolean;
}

export interface Usage {
  /** docs/design.md §2 rule 5: distinct users with at least one consuming connection. */
  users: number;
  overuseUsers: number;
  /** Users held only through stale hosts (docs/design.md §2 rule 10). */
  unverifiedUsers: number;
  exemptConnections: number;
  consumingUsers: ReadonlySet<string>;
  /** Every connection of the farm that is not on a retired host. */
  connections: ConnectionUsage[];
}

/** At most this many admin desktop connections per host are exempt (seed table, footnote). */
export const EXEMPT_PER_HOST = 2;

/** Orders strings by their UTF-8 bytes, as Redis orders sorted-set members. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** docs/design.md §2 rule 3: whether a connection takes part in counting at all. */
export function connectionCounts(session: Session, countDisconnected: boolean): boolean {
  return countDisconnected || session.state === 'active';
}

/** docs/design.md §2 rule 2: an admin desktop connection (any `via`) may be exempt. */
export function exemptionEligible(session: Session, countDisconnected: boolean): boolean {
  return session.admin && session.kind === 'desktop' && connectionCounts(session, countDisconnected);
}

/** docs/design.md §2 rule 2: the ids of the exempt connections of one host. */
export function exemptIds(connections: readonly Session[], countDisconnected: boolean): Set<string> {
  const eligible = connections
    .filter((session) => exemptionEligible(session, countDisconnected))
    .sort((a, b) => a.since - b.since || compareUtf8(a.id, b.id));
  return new Set(eligible.slice(0, EXEMPT_PER_HOST).map((session) => session.id));
}

/** Rules 1-5 and 10 at one moment: who consumes, who is exempt, how many users are in use. */
export function evaluateUsage(input: UsageInput): Usage {
  const connections: ConnectionUsage[] = [];
  const liveUsers = new Set<string>();
  const consumingUsers = new Set<string>();
  let exemptConnections = 0;
  for (const host of input.hosts) {
    if (host.retired) continue;
    const exempt = exemptIds(host.connections, input.countDisconnected);
    for (const session of host.connections) {
      const isExempt = exempt.has(session.id);
      const consumes = !isExempt && connectionCounts(session, input.countDisconnected);
      if (isExempt) exemptConnections += 1;
      if (consumes) {
        consumingUsers.add(session.user);
        if (host.live) liveUsers.add(session.user);
      }
      connections.push({ ...session, host: host.host, exempt: isExempt, consumes });
    }
  }
  let unverifiedUsers = 0;
  for (const user of consumingUsers) if (!liveUsers.has(user)) unverifiedUsers += 1;
  const users = consumingUsers.size;
  return {
    users,
    overuseUsers: Math.max(0, users - input.seats),
    unverifiedUsers,
    exemptConnections,
    consumingUsers,
    connections,
  };
}

/** The label set of `ras_connections`. */
export function connectionLabelKey(session: Session): string {
  return `${session.kind}|${session.via}|${session.admin}|${session.state}`;
}

/**
 * Every label set of `ras_connections` (kind × via × admin × state: 16). A farm exports each of them,
 * 0 where it has no such connection, so a panel or a rule never sees a series come and go.
 */
export const CONNECTION_LABEL_KEYS: readonly string[] = Object.freeze(
  (['desktop', 'app'] as const).flatMap((kind) =>
    (['ras', 'rdp'] as const).flatMap((via) =>
      [false, true].flatMap((admin) =>
        (['active', 'disconnected'] as const).map((state) =>
          connectionLabelKey({ kind, via, admin, state } as Session),
        ),
      ),
    ),
  ),
);

/** Connections counted by kind, via, admin and state, as `ras_connections` exports them: all 16, 0 where none. */
export function countByLabels(connections: readonly Session[]): Map<string, number> {
  const counts = new Map<string, number>(CONNECTION_LABEL_KEYS.map((key) => [key, 0]));
  for (const session of connections) {
    const key = connectionLabelKey(session);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}
