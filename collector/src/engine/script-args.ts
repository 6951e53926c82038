/**
 * The arguments of every Lua script, built apart from running them: each builder returns the keys
 * and the named arguments in the order the script's header lists them (a unit test holds each
 * builder to its header). The farm's rules come first, at the same positions in every script.
 */
import { canonicalSession, type ParsedEvent, type Session, type StatusFrame } from '@rasmon/protocol';
import type { FarmRules } from '../config/farm-directory.js';
import { farmKeyList, hostKeyList, type RedisKeys, type StoredSourceStatus } from './redis-schema.js';

export const SCRIPT_NAMES = [
  'applyFrame',
  'beginSnapshot',
  'snapshotSlice',
  'hello',
  'renewLease',
  'release',
  'maintainHost',
  'tick',
  'forgetHost',
  'reportStatus',
  'openDay',
] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

/** A Buffer goes to Redis as it is: bytes made off the agents' thread are not encoded again there. */
export type ScriptArg = string | number | Buffer;

/** One call of a script: the key count is the length of `keys`. */
export interface ScriptCall {
  script: ScriptName;
  keys: string[];
  /** [name in the script's header, value], in ARGV order. */
  args: Array<readonly [string, ScriptArg]>;
}

/** Who is asking: one agent connection for one host. */
export interface HostIdentity {
  /** Lower case. */
  host: string;
  /** The connection's id, unique across collectors. */
  owner: string;
  stream: string;
  epoch: string;
}

/** ARGV[1..3] of every script. */
function ruleArgs(rules: FarmRules): Array<readonly [string, ScriptArg]> {
  return [
    ['seats', rules.seats ?? ''],
    ['countDisconnected', rules.countDisconnected ? '1' : '0'],
    ['graceSeed', rules.overuseGraceStartedAt?.toString() ?? ''],
  ];
}

function call(
  script: ScriptName,
  keys: string[],
  rules: FarmRules,
  args: Array<readonly [string, ScriptArg]>,
): ScriptCall {
  return { script, keys, args: [...ruleArgs(rules), ...args] };
}

function hostKeys(keys: RedisKeys, farm: string, host: string): string[] {
  return [...farmKeyList(keys.farm(farm)), ...hostKeyList(keys.host(farm, host))];
}

/** The fields of a session the Lua index reads, decoded with the frame, in the order applyFrame.lua reads them. */
function indexed(session: Session): Array<string | boolean | number> {
  return [session.id, session.user, session.admin, session.kind, session.via, session.state, session.since];
}

/**
 * Event items, flat (one array, each item's fields one after another): `seq, 'u', json, ...session`,
 * `seq, 'e', id` or `seq, 'x'`.
 */
export function packEvents(events: readonly ParsedEvent[]): string {
  const items: Array<string | boolean | number> = [];
  for (const event of events) {
    if (event.op === 'upsert') items.push(event.seq, 'u', canonicalSession(event.session), ...indexed(event.session));
    else if (event.op === 'end') items.push(event.seq, 'e', event.id);
    else items.push(event.seq, 'x');
  }
  return JSON.stringify(items);
}

/** One session as a snapshot item, `json, ...session`: JSON array text without its brackets. */
function snapshotItem(session: Session): string {
  return JSON.stringify([canonicalSession(session), ...indexed(session)]).slice(1, -1);
}

/** Snapshot items (packedSnapshot's `items`, from `from` up to `to`), flat in one JSON array. */
export function joinItems(items: readonly string[], from = 0, to = items.length): string {
  return `[${items.slice(from, to).join(',')}]`;
}

/** Snapshot items, flat: `json, ...session` for each session. */
export function packSnapshot(sessions: readonly Session[]): string {
  return joinItems(sessions.map(snapshotItem));
}

/**
 * A snapshot's sessions as applyFrame.lua and snapshotSlice.lua take them: each packed on its own
 * (joinItems puts any run of them together), with each session's id and user (beginSnapshot.lua's
 * listing; the user also for the month's distinct users). Built where the frame was parsed: for a
 * big frame, off the agents' thread (ingest/frame-parse-thread.ts).
 */
export interface PackedSnapshot {
  items: string[];
  ids: string[];
  users: string[];
  /**
   * beginSnapshot.lua's listing ({@link snapshotListing}) as UTF-8, where a big frame was parsed
   * (frame-parse-worker.ts): for 2,000 sessions, building it took the agents' thread several
   * milliseconds at a time. Made from `ids` and `users` where absent.
   */
  listing?: Uint8Array;
}

export function packedSnapshot(sessions: readonly Session[]): PackedSnapshot {
  return {
    items: sessions.map(snapshotItem),
    ids: sessions.map((session) => session.id),
    users: sessions.map((session) => session.user),
  };
}

/**
 * beginSnapshot.lua's listing of a snapshot: JSON, its sessions' ids, then its users, each once
 * (the script only asks of each user whether it is new to the farm, so it is handed them ready to
 * ask).
 */
export function snapshotListing(sessions: Pick<PackedSnapshot, 'ids' | 'users'>): string {
  return JSON.stringify([sessions.ids, [...new Set(sessions.users)]]);
}

function listingArg(sessions: PackedSnapshot): ScriptArg {
  const { listing } = sessions;
  // A view of the bytes handed over, not a copy (a structured clone gives a plain Uint8Array).
  return listing ? Buffer.from(listing.buffer, listing.byteOffset, listing.byteLength) : snapshotListing(sessions);
}

/** A frame as applyFrame.lua applies it: its events, or a snapshot's sessions packed. */
export type FrameItems =
  { type: 'events'; events: readonly ParsedEvent[] } | { type: 'snapshot'; seq: number; sessions: PackedSnapshot };

/** A farm's host limits: hosts not retired, and hosts known (retired ones included). */
export interface HostCaps {
  maxHosts: number;
  maxKnownHosts: number;
}

/**
 * The host binding a hello asks for (docs/design.md §6, "Host binding"): `key` checks the host's
 * binding and binds a host not bound yet to `keyHash`; `none` leaves bindings alone.
 */
export type HelloBinding = { mode: 'key'; keyHash: string | undefined } | { mode: 'none' };

export interface Settings {
  /** Lease length (ms). */
  leaseMs: number;
  /** limits.maxSessions. */
  maxSessions: number;
  /** The farm's quotas (config/farm-quotas.ts). */
  farmMaxSessions: number;
  maxNewUsersPerMinute: number;
}

/** One slice of a big snapshot (snapshotSlice.lua): ends (a JSON array of ids) or sessions (joinItems). */
export interface SnapshotSlice {
  seq: number;
  part: 'ends' | 'sessions';
  items: string;
  correcting: boolean;
  last: boolean;
  accepted: boolean;
}

export const scriptCalls = {
  hello(
    keys: RedisKeys,
    rules: FarmRules,
    who: HostIdentity,
    agent: string | undefined,
    leaseMs: number,
    caps: HostCaps,
    binding: HelloBinding,
  ): ScriptCall {
    return call('hello', hostKeys(keys, rules.id, who.host), rules, [
      ['epoch', who.epoch],
      ['owner', who.owner],
      ['host', who.host],
      ['stream', who.stream],
      ['agent', agent ?? ''],
      ['leaseMs', leaseMs],
      ['maxHosts', caps.maxHosts],
      ['maxKnownHosts', caps.maxKnownHosts],
      ['binding', binding.mode],
      ['keyHash', binding.mode === 'key' ? (binding.keyHash ?? '') : ''],
    ]);
  },

  applyFrame(keys: RedisKeys, rules: FarmRules, who: HostIdentity, settings: Settings, frame: FrameItems): ScriptCall {
    return call('applyFrame', hostKeys(keys, rules.id, who.host), rules, [
      ['epoch', who.epoch],
      ['owner', who.owner],
      ['host', who.host],
      ['stream', who.stream],
      ['leaseMs', settings.leaseMs],
      ['maxSessions', settings.maxSessions],
      ['type', frame.type],
      ['items', frame.type === 'events' ? packEvents(frame.events) : joinItems(frame.sessions.items)],
      ['snapshotSeq', frame.type === 'snapshot' ? String(frame.seq) : ''],
      ['farmMaxSessions', settings.farmMaxSessions],
      ['maxNewUsersPerMinute', settings.maxNewUsersPerMinute],
    ]);
  },

  beginSnapshot(
    keys: RedisKeys,
    rules: FarmRules,
    who: HostIdentity,
    settings: Settings,
    seq: number,
    sessions: PackedSnapshot,
  ): ScriptCall {
    return call('beginSnapshot', hostKeys(keys, rules.id, who.host), rules, [
      ['epoch', who.epoch],
      ['owner', who.owner],
      ['host', who.host],
      ['stream', who.stream],
      ['leaseMs', settings.leaseMs],
      ['seq', String(seq)],
      ['listing', listingArg(sessions)],
      ['farmMaxSessions', settings.farmMaxSessions],
      ['maxNewUsersPerMinute', settings.maxNewUsersPerMinute],
    ]);
  },

  snapshotSlice(
    keys: RedisKeys,
    rules: FarmRules,
    who: HostIdentity,
    leaseMs: number,
    slice: SnapshotSlice,
  ): ScriptCall {
    return call('snapshotSlice', hostKeys(keys, rules.id, who.host), rules, [
      ['epoch', who.epoch],
      ['owner', who.owner],
      ['host', who.host],
      ['stream', who.stream],
      ['leaseMs', leaseMs],
      ['seq', String(slice.seq)],
      ['part', slice.part],
      ['items', slice.items],
      ['correcting', slice.correcting ? '1' : '0'],
      ['last', slice.last ? '1' : '0'],
      ['accepted', slice.accepted ? '1' : '0'],
    ]);
  },

  renewLease(keys: RedisKeys, rules: FarmRules, who: HostIdentity, leaseMs: number): ScriptCall {
    return call('renewLease', hostKeys(keys, rules.id, who.host), rules, [
      ['epoch', who.epoch],
      ['owner', who.owner],
      ['host', who.host],
      ['leaseMs', leaseMs],
    ]);
  },

  release(keys: RedisKeys, rules: FarmRules, who: Pick<HostIdentity, 'host' | 'owner'>): ScriptCall {
    return call('release', hostKeys(keys, rules.id, who.host), rules, [
      ['owner', who.owner],
      ['host', who.host],
    ]);
  },

  maintainHost(keys: RedisKeys, rules: FarmRules, host: string, retireMs: number): ScriptCall {
    return call('maintainHost', hostKeys(keys, rules.id, host), rules, [
      ['host', host],
      ['retireMs', retireMs],
    ]);
  },

  tick(
    keys: RedisKeys,
    rules: FarmRules,
    freshEpoch: string,
    retireMs: number,
    forgetMs: number,
    lost: { knownEpoch: string | undefined; unmarkedMs: number } = { knownEpoch: undefined, unmarkedMs: 0 },
  ): ScriptCall {
    return call('tick', [...farmKeyList(keys.farm(rules.id)), keys.rebuilding(rules.id)], rules, [
      ['freshEpoch', freshEpoch],
      ['retireMs', retireMs],
      ['forgetMs', forgetMs],
      ['knownEpoch', lost.knownEpoch ?? ''],
      ['unmarkedMs', lost.unmarkedMs],
    ]);
  },

  reportStatus(keys: RedisKeys, rules: FarmRules, who: HostIdentity, status: StatusFrame): ScriptCall {
    const { source, ok, error, lastListAt } = status;
    return call('reportStatus', hostKeys(keys, rules.id, who.host), rules, [
      ['epoch', who.epoch],
      ['owner', who.owner],
      ['host', who.host],
      [
        'status',
        JSON.stringify({
          source,
          ok,
          ...(error === undefined ? {} : { error }),
          ...(lastListAt === undefined ? {} : { lastListAt }),
        } satisfies StoredSourceStatus),
      ],
    ]);
  },

  openDay(keys: RedisKeys, rules: FarmRules, now: number): ScriptCall {
    return call('openDay', farmKeyList(keys.farm(rules.id)), rules, [['now', now]]);
  },

  /** forgetMs undefined: forget the host whatever its state. */
  forgetHost(keys: RedisKeys, rules: FarmRules, host: string, forgetMs: number | undefined): ScriptCall {
    return call('forgetHost', hostKeys(keys, rules.id, host), rules, [
      ['host', host],
      ['forgetMs', forgetMs ?? ''],
    ]);
  },
};
