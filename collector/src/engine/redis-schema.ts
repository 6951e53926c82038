/**
 * The layout of the Redis state, named here and only here: every key rasmon uses, and every field
 * of the hashes that the Lua scripts write and TypeScript reads, with the form of their values.
 * The scripts spell the same names (Lua has no import): collector/test/redis-schema.test.ts holds
 * each of their names to this file. All keys of a farm carry the hash tag `{farm}`, so each farm's
 * scripts run on one shard of a Redis Cluster. Lua receives keys through KEYS and never builds a
 * name itself.
 */

import { normalizeHost } from '@rasmon/protocol';

/** Keys holding farm-wide state. */
export interface FarmKeys {
  /** String: a random value that disappears with the data; see `tick`. */
  epoch: string;
  /** Hash: counters and records (peaks, grace, admissions, …), the fields {@link META_FIELDS}. */
  meta: string;
  /** Hash user → consuming connections on hosts that are not retired. */
  users: string;
  /** Hash user → consuming connections on live hosts. */
  live: string;
  /** Sorted set user → order in which it last started consuming. */
  order: string;
  /** Hash "kind|via|admin|state" (protocol's CONNECTION_LABEL_KEYS) → connections. */
  labels: string;
  /**
   * Hash UTC day number → that day's record: a finished day its {@link DAY_RECORD_FIELDS}, the day
   * still open its peak so far.
   */
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
  /** Hash host → the agent's last status of its session source, as the JSON of a {@link StoredSourceStatus}. */
  sources: string;
  /**
   * Hash host → sha256 hex of the host key its agent bound it with (docs/design.md §6, "Host
   * binding"): set by the first hello with a key, removed by `rebind-host` and with the host when
   * it is forgotten. Never the key itself.
   */
  bindings: string;
  /**
   * Sorted set user → when (ms) it last came new to the farm (it consumed nowhere on the farm), for
   * the users who did within the last minute: the farm's `maxNewUsersPerMinute` window
   * (includes/quotas.lua). Expires a minute after the last one.
   */
  newUsers: string;
}

/** Keys of a farm's RAS broker connector. */
export interface BrokerKeys {
  /** Hash: the fields {@link BROKER_FIELDS}, written after every poll by the collector that polls. */
  state: string;
  /** String: the id of the collector that polls the broker, expiring (the lease: one poller per broker). */
  lease: string;
}

/**
 * The fields of a farm's broker hash: `pollAt` and `okAt` (ms: the last poll, the last one RAS
 * answered), `up` ('1' or '0': the last poll answered), `reason` and `message` (why the last poll
 * failed; neither names the password or a token), `license` (the JSON of the RasLicense last read),
 * `sessions` (the JSON of {@link StoredBrokerSessions}), `poller` (the collector that wrote them).
 */
export const BROKER_FIELDS = ['pollAt', 'okAt', 'up', 'reason', 'message', 'license', 'sessions', 'poller'] as const;
export type BrokerField = (typeof BROKER_FIELDS)[number];
export type StoredBroker = Partial<Record<BrokerField, string>>;

/** The `sessions` field of the broker hash: what the last answered poll imported and set aside. */
export interface StoredBrokerSessions {
  /** Sessions imported per source (`ras.sessions`), by source. */
  imported: Record<string, number>;
  /** Sessions listed but not imported (another source, no logged-on user, no name). */
  skipped: number;
  /** Items of the list set aside because a field had another shape. */
  rejected: number;
  /** Users listed as a UPN whose suffix ras.upnDomains does not map. */
  unmappedUpns: number;
}

/** A day `rasmon-collector correct` rewrote: when, by whom, why, and the record before and after. */
export interface StoredCorrection {
  at: number;
  by: string;
  reason: string;
  before: string;
  after: string;
}

/** Keys holding one host's state. */
export interface HostKeys {
  /** Hash: the fields {@link HOST_STATE_FIELDS}. */
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
      bindings: `${base}bindings`,
      newUsers: `${base}newusers`,
    };
  }

  /**
   * The farm's RAS broker connector (docs/design.md §4, "Broker connector"): no Lua script reads
   * these; the collector that polls writes them and every collector reads them.
   */
  broker(farm: string): BrokerKeys {
    const base = `${this.prefix}:{${farm}}:broker`;
    return { state: base, lease: `${base}:lease` };
  }

  /**
   * Sorted set host → until when (ms) the host counts as not yet resent: the hosts asked for their
   * state after the farm's data was lost (docs/design.md §6), each until its snapshot comes or its
   * connection ends; and '' (no host), the farm's own mark, which tick.lua stores with the epoch
   * that replaces a lost one, for the time every collector has to mark its own hosts. Read by no
   * script.
   */
  rebuilding(farm: string): string {
    return `${this.prefix}:{${farm}}:rebuilding`;
  }

  /**
   * Hash UTC day number → the JSON of a {@link StoredCorrection}: the days `rasmon-collector correct`
   * rewrote, who did and why (docs/design.md §6). No Lua script reads it.
   */
  corrections(farm: string): string {
    return `${this.prefix}:{${farm}}:corrections`;
  }

  /**
   * Set of the normalized names of the users the farm's sessions named in one calendar month (UTC,
   * `YYYY-MM`): the distinct users behind the SAL count (docs/design.md §4, "Customers, SPLA and
   * SAL"). Written by TypeScript after each applied frame (engine/month-users.ts), expiring
   * `distinctUsers.retentionMonths` after the month. No Lua script reads it.
   */
  monthUsers(farm: string, month: string): string {
    return `${this.prefix}:{${farm}}:monthusers:${month}`;
  }

  /**
   * String `YYYY-MM`: the first month whose distinct users were recorded for the farm (SET NX by
   * the retention sweep at Redis's ready, to the oldest set it found or else that month, and by each
   * write into a month's set; never expires). Months before it report no data rather than 0 users (engine/month-users.ts).
   */
  monthUsersSince(farm: string): string {
    return `${this.prefix}:{${farm}}:monthusers-since`;
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

/**
 * The farm keys in the order every script receives them (KEYS[1..17]; `F` in includes/keys.lua).
 * A new key goes at the end, so the others keep their positions.
 */
export const FARM_KEY_NAMES = [
  'epoch',
  'meta',
  'users',
  'live',
  'order',
  'labels',
  'peaks',
  'lease',
  'seen',
  'agents',
  'counts',
  'retired',
  'cdOff',
  'stale',
  'sources',
  'bindings',
  'newUsers',
] as const satisfies ReadonlyArray<keyof FarmKeys>;

/** The host keys in the order scripts about one host receive them, after the farm's (`H` in includes/keys.lua). */
export const HOST_KEY_NAMES = ['host', 'conns', 'elig'] as const satisfies ReadonlyArray<keyof HostKeys>;

export function farmKeyList(keys: FarmKeys): string[] {
  return FARM_KEY_NAMES.map((name) => keys[name]);
}

export function hostKeyList(keys: HostKeys): string[] {
  return HOST_KEY_NAMES.map((name) => keys[name]);
}

/**
 * The fields of a farm's meta hash, each an integer (includes/meta.lua): the counters /metrics
 * shows, the overuse grace, and the current UTC day's record (rule 7) that closes into peaks.
 */
export const META_FIELDS = [
  'exempt',
  'unverified',
  'admissions',
  'nextOrder',
  'peak',
  'peakToday',
  'day',
  'graceStart',
  'graceSeats',
  'graceSeed',
  'corrections',
  'lastUpdate',
  /** Bumped by every script that changes what the farm shows: the scrape cache's key. */
  'version',
  'peakAt',
  'daySeats',
  'overToday',
  'admDay',
  'overMs',
  'overSince',
] as const;
export type MetaField = (typeof META_FIELDS)[number];
/** A meta hash as HGETALL returns it: a field never written is absent. */
export type FarmMeta = Partial<Record<MetaField, string>>;

/**
 * The fields of a host's state hash (includes/hosts.lua): `seq` an integer, the flags '1' or '0',
 * `pending` the owner and seq of a snapshot its connection is applying in slices (beginSnapshot.lua).
 */
export const HOST_STATE_FIELDS = ['stream', 'seq', 'owner', 'live', 'retired', 'synced', 'pending'] as const;
export type HostStateField = (typeof HOST_STATE_FIELDS)[number];

/**
 * A finished day in the peaks hash: these values, in this order, comma-separated, each an integer
 * or '' where unknown (includes/day-record.lua writes them). A day written before records existed
 * holds the bare peak (`"42"`).
 */
export const DAY_RECORD_FIELDS = ['peakUsers', 'peakAtMs', 'seats', 'maxOveruse', 'admissions', 'msOverSeats'] as const;
export type DayRecordField = (typeof DAY_RECORD_FIELDS)[number];

/** A stored day record's values by name; a value left out of the record is absent. */
export function splitDayRecord(value: string): Partial<Record<DayRecordField, string>> {
  const parts = value.split(',');
  const record: Partial<Record<DayRecordField, string>> = {};
  DAY_RECORD_FIELDS.forEach((field, index) => {
    if (parts[index] !== undefined) record[field] = parts[index];
  });
  return record;
}

/** The parts of a labels field, joined by '|' (includes/connections.lua, labelOf). */
export const LABEL_PARTS = ['kind', 'via', 'admin', 'state'] as const;

/** A value of the sources hash, as JSON: built by script-args.ts, compared by reportStatus.lua, read by farm-reader.ts. */
export interface StoredSourceStatus {
  source: string;
  ok: boolean;
  error?: string;
  lastListAt?: number;
}
export const SOURCE_STATUS_FIELDS = ['source', 'ok', 'error', 'lastListAt'] as const satisfies ReadonlyArray<
  keyof StoredSourceStatus
>;
