/**
 * Every Redis key rasmon uses is named here, and only here. All keys of a farm carry the hash tag
 * `{farm}`, so each farm's scripts run on one shard of a Redis Cluster. Lua receives keys through
 * KEYS and never builds a name itself.
 */

import { normalizeHost } from '@rasmon/protocol';

/** Keys holding farm-wide state. */
export interface FarmKeys {
  /** String: a random value that disappears with the data; see `tick`. */
  epoch: string;
  /** Hash: counters and records (peaks, grace, admissions, …). */
  meta: string;
  /** Hash user → consuming connections on hosts that are not retired. */
  users: string;
  /** Hash user → consuming connections on live hosts. */
  live: string;
  /** Sorted set user → order in which it last started consuming. */
  order: string;
  /** Hash "kind|via|admin|state" → connections. */
  labels: string;
  /** Hash UTC day number → highest users in use that day. */
  peaks: string;
  /** Sorted set host → lease expiry (ms) of hosts whose agent holds a lease. */
  lease: string;
  /** Sorted set host → last renewal (ms) of every known host. */
  seen: string;
  /** Hash host → agent name/version from its last hello. */
  agents: string;
  /** Hash host → connections held. */
  counts: string;
  /** Set of retired hosts. */
  retired: string;
  /** Set of hosts whose connections are indexed with countDisconnected false. */
  cdOff: string;
  /** Sorted set host → when it went stale, for hosts neither live nor retired. */
  stale: string;
  /** Hash host → the agent's last status frame, as JSON {source, ok, error?, lastListAt?, at}. */
  sources: string;
}

/** Keys holding one host's state. */
export interface HostKeys {
  /** Hash: stream, seq, owner, live, retired, synced. */
  host: string;
  /** Hash connection id → canonical session JSON. */
  conns: string;
  /** Sorted set since → connection id of exemption-eligible connections. */
  elig: string;
}

export class RedisKeys {
  constructor(private readonly prefix: string) {}

  farm(farm: string): FarmKeys {
    const base = `${this.prefix}:{${farm}}:`;
    return {
      epoch: `${base}epoch`,
      meta: `${base}meta`,
      users: `${base}users`,
      live: `${base}live`,
      order: `${base}order`,
      labels: `${base}labels`,
      peaks: `${base}peaks`,
      lease: `${base}lease`,
      seen: `${base}seen`,
      agents: `${base}agents`,
      counts: `${base}counts`,
      retired: `${base}retired`,
      cdOff: `${base}cdoff`,
      stale: `${base}stale`,
      sources: `${base}sources`,
    };
  }

  /** String written by readiness checks: a Redis that refuses writes (OOM, READONLY) is not ready. */
  get writeProbe(): string {
    return `${this.prefix}:probe`;
  }

  /** Host names compare case-insensitively (docs/design.md §2 rule 1): keys use the lower-case form. */
  host(farm: string, host: string): HostKeys {
    const base = `${this.prefix}:{${farm}}:host:${normalizeHost(host)}:`;
    return { host: `${base}state`, conns: `${base}conns`, elig: `${base}elig` };
  }
}

/** The farm keys in the order every script's contract lists them. */
export function farmKeyList(keys: FarmKeys): string[] {
  return [
    keys.epoch,
    keys.meta,
    keys.users,
    keys.live,
    keys.order,
    keys.labels,
    keys.peaks,
    keys.lease,
    keys.seen,
    keys.agents,
    keys.counts,
    keys.retired,
    keys.cdOff,
    keys.stale,
    keys.sources,
  ];
}

export function hostKeyList(keys: HostKeys): string[] {
  return [keys.host, keys.conns, keys.elig];
}
