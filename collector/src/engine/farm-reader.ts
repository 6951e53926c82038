/**
 * Reads farm state from Redis for /metrics and the API: every farm in one pipelined round trip
 * (one per shard on a Cluster), then the pure time rules of the protocol package on top.
 */
import { Cluster, type Redis } from 'ioredis';
import {
  DAY_MS,
  expiryStatus,
  overuseGraceStatus,
  type ExpiryState,
  type LicenseKind,
  type OveruseGraceStatus,
} from '@rasmon/protocol';
import type { FarmConfig } from '../config/config.js';
import { forecastDays, forecastFull, type DayPeak, type PeakForecast } from './peak-forecast.js';
import {
  splitDayRecord,
  type FarmMeta,
  type MetaField,
  type RedisKeys,
  type StoredBroker,
  type StoredBrokerSessions,
  type StoredSourceStatus,
} from './redis-schema.js';

export interface HostState {
  host: string;
  up: boolean;
  retired: boolean;
  /** Last lease renewal, ms. */
  lastSeen: number | undefined;
  connections: number;
  agent: string | undefined;
  /** Listed in the farm's expectedHosts. */
  expected: boolean;
  /** The agent's last status of its session source (feature `status`); undefined while none came. */
  source: SourceStatus | undefined;
}

export interface SourceStatus {
  name: string;
  ok: boolean;
  /** Set while failing. */
  error: string | undefined;
  /** When the source last listed the sessions, ms. */
  lastListAt: number | undefined;
}

/** A status as reportStatus.lua keeps it; undefined for anything else (it is never trusted blindly). */
function sourceStatus(json: string | undefined): SourceStatus | undefined {
  if (json === undefined) return undefined;
  try {
    const raw = JSON.parse(json) as { [field in keyof StoredSourceStatus]?: unknown };
    if (typeof raw.source !== 'string' || typeof raw.ok !== 'boolean') return undefined;
    return {
      name: raw.source,
      ok: raw.ok,
      error: typeof raw.error === 'string' ? raw.error : undefined,
      lastListAt: typeof raw.lastListAt === 'number' ? raw.lastListAt : undefined,
    };
  } catch {
    return undefined;
  }
}

/** RAS's license as the broker hash keeps it (broker/license-reader.ts's RasLicense): the fields shown. */
export interface BrokerLicense {
  /** `usersLicenseInfo`: the users RAS counts now. */
  users: number | undefined;
  /** `installedUsers`. */
  seats: number | undefined;
  /** `usersPeak`. */
  peakUsers: number | undefined;
  /** `expiryDate`, yyyy-mm-dd. */
  expiryDate: string | undefined;
  /** `gracePeriodState`, `gracePeriodDaysLeft`. */
  graceState: string | undefined;
  graceDaysLeft: number | undefined;
  needsAttention: boolean;
  statusMessage: string | undefined;
  alertMessage: string | undefined;
  /** `type` by name, `licenseType` as RAS words it. */
  type: string | undefined;
  licenseType: string | undefined;
  /** SPLA: the usage of the current billing period, and that period (yyyy-mm-ddThh:mm, the broker's clock). */
  currPeriodUsage: number | undefined;
  billingPeriodStart: string | undefined;
  billingPeriodEnd: string | undefined;
}

/** A farm's RAS broker connector as the broker hash holds it. */
export interface BrokerState {
  /** The last poll answered. */
  up: boolean;
  lastPollAt: number | undefined;
  lastOkAt: number | undefined;
  /** Why the last poll failed (a BrokerFailureReason), while it fails. */
  reason: string | undefined;
  message: string | undefined;
  /** What RAS last said of its license; undefined before it first answered. */
  license: BrokerLicense | undefined;
  /** What the last answered poll imported. */
  sessions: StoredBrokerSessions | undefined;
  /** rasmon's users − RAS's `usersLicenseInfo`; undefined while RAS gave no count. */
  driftUsers: number | undefined;
}

const isText = (value: unknown): value is string => typeof value === 'string';
const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value);

/** The license JSON of the broker hash, each field only when it has its documented shape. */
function brokerLicense(json: string | undefined): BrokerLicense | undefined {
  if (json === undefined) return undefined;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const text = (name: string) => (isText(raw[name]) ? raw[name] : undefined);
  const count = (name: string) => (isCount(raw[name]) ? raw[name] : undefined);
  return {
    users: count('usersLicenseInfo'),
    seats: count('installedUsers'),
    peakUsers: count('usersPeak'),
    expiryDate: text('expiryDate'),
    graceState: text('gracePeriodState'),
    graceDaysLeft: count('gracePeriodDaysLeft'),
    needsAttention: raw.needsAttention === true,
    statusMessage: text('statusMessage'),
    alertMessage: text('alertMessage'),
    type: text('type'),
    licenseType: text('licenseType'),
    currPeriodUsage: count('currPeriodUsage'),
    billingPeriodStart: text('billingPeriodStart'),
    billingPeriodEnd: text('billingPeriodEnd'),
  };
}

function brokerSessions(json: string | undefined): StoredBrokerSessions | undefined {
  if (json === undefined) return undefined;
  try {
    const raw = JSON.parse(json) as Partial<StoredBrokerSessions>;
    const imported: Record<string, number> = {};
    for (const [source, count] of Object.entries(raw.imported ?? {})) if (isCount(count)) imported[source] = count;
    return {
      imported,
      skipped: isCount(raw.skipped) ? raw.skipped : 0,
      rejected: isCount(raw.rejected) ? raw.rejected : 0,
      unmappedUpns: isCount(raw.unmappedUpns) ? raw.unmappedUpns : 0,
    };
  } catch {
    return undefined;
  }
}

/**
 * `pollSeconds`: an answer older than two polls and a slow one's time (no collector polls: all of
 * them stopped, or the one that holds the lease hangs) no longer counts as up.
 */
function brokerState(
  stored: StoredBroker | null | undefined,
  users: number,
  pollSeconds: number,
  now: number,
): BrokerState {
  const hash = stored ?? {};
  const license = brokerLicense(hash.license);
  const okAt = num(hash.okAt);
  return {
    up: hash.up === '1' && okAt !== undefined && now - okAt <= (2 * pollSeconds + 30) * 1000,
    lastPollAt: num(hash.pollAt),
    lastOkAt: num(hash.okAt),
    reason: hash.up === '0' ? hash.reason : undefined,
    message: hash.up === '0' ? hash.message : undefined,
    license,
    sessions: brokerSessions(hash.sessions),
    driftUsers: license?.users === undefined ? undefined : users - license.users,
  };
}

/** One farm as /metrics and the API show it. */
export interface FarmState {
  id: string;
  /** Undefined only for a farm with ras.adopt and no fallback, before RAS first answered. */
  license: LicenseKind | undefined;
  licenseKey: string | undefined;
  customer: string | undefined;
  /** Undefined for an SPLA farm without a seat cap: it has no overuse. */
  seats: number | undefined;
  users: number;
  overuseUsers: number;
  unverifiedUsers: number;
  overuseAdmissions: number;
  peakUsers: number;
  peakUsersToday: number;
  exemptConnections: number;
  snapshotCorrections: number;
  /** Undefined while the expiry is not known (ras.adopt without a fallback, before RAS answered). */
  state: ExpiryState | undefined;
  expires: number | undefined;
  graceEnd: number | undefined;
  /** The farm's RAS broker connector; undefined for a farm without a `ras` block. */
  broker: BrokerState | undefined;
  /**
   * Hosts asked for their state after the farm's data was lost that have not resent it: while any
   * has, the farm's numbers are not exact (docs/design.md §6).
   */
  rebuildingHosts: number;
  /**
   * The farm's numbers are not exact yet after Redis lost its data: hosts have not resent their
   * state, or the farm's epoch is gone and no collector has recreated it yet. Its series are
   * withheld meanwhile rather than shown low (docs/design.md §6).
   */
  rebuilding: boolean;
  overuseGrace: OveruseGraceStatus;
  lastUpdate: number | undefined;
  /** "kind|via|admin|state" → connections. */
  connectionsByLabels: Map<string, number>;
  hosts: HostState[];
  /** When the trend of the daily peak reaches the seats (peak-forecast.ts); null when it says nothing. */
  forecast: PeakForecast | null;
}

/** A farm's forecast as last computed, and what it was computed from. */
interface CachedForecast {
  /** The farm's open day (meta `day`) and seats it was made for. */
  key: string;
  madeAt: number;
  forecast: PeakForecast | null;
}

/**
 * A forecast is made again when the farm's day closes or its seats change, and at the latest after
 * this long: so a day `rasmon-collector correct` rewrote shows in it within ten minutes.
 */
const FORECAST_MAX_AGE_MS = 10 * 60_000;

export interface FarmsRead {
  /** Redis server time of the read, ms. */
  now: number;
  farms: FarmState[];
}

type Reply = [Error | null, unknown];

function num(value: string | undefined): number | undefined {
  return value === undefined ? undefined : Number(value);
}

function pairs(reply: unknown): Array<[string, number]> {
  const flat = reply as string[];
  const out: Array<[string, number]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, Number(flat[i + 1])]);
  return out;
}

export class FarmReader {
  private readonly forecasts = new Map<string, CachedForecast>();
  /** Each farm's epoch as this reader last read it. */
  private readonly epochs = new Map<string, string>();

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keys: RedisKeys,
  ) {}

  /**
   * The version of each farm's state (bumped by every script that changes what a farm shows), in
   * the order given; null for a farm never written.
   */
  async versions(farms: readonly FarmConfig[]): Promise<Array<string | null>> {
    if (farms.length === 0) return [];
    const commands = farms.map((farm) => ['hget', this.keys.farm(farm.id).meta, 'version' satisfies MetaField]);
    const replies =
      this.redis instanceof Cluster
        ? await Promise.all(commands.map(([, key, field]) => this.redis.hget(key!, field!)))
        : (((await this.redis.pipeline(commands).exec()) ?? []) as Reply[]).map(([err, value]) => {
            if (err) throw err;
            return value as string | null;
          });
    return replies;
  }

  /** Reads every given farm. Rejects when Redis cannot answer. */
  async read(farms: readonly FarmConfig[]): Promise<FarmsRead> {
    const commands = (farm: FarmConfig) => {
      const k = this.keys.farm(farm.id);
      return [
        ['hgetall', k.meta],
        ['hlen', k.users],
        ['hgetall', k.labels],
        ['hgetall', k.counts],
        ['zrange', k.lease, '0', '-1', 'WITHSCORES'],
        ['zrange', k.seen, '0', '-1', 'WITHSCORES'],
        ['hgetall', k.agents],
        ['smembers', k.retired],
        ['hgetall', k.sources],
        ['hgetall', this.keys.broker(farm.id).state],
        ['zrange', this.keys.rebuilding(farm.id), '0', '-1', 'WITHSCORES'],
        ['get', k.epoch],
      ];
    };
    const perFarm = farms.length === 0 ? 0 : commands(farms[0]!).length;
    let now: number;
    let replies: Reply[];
    if (this.redis instanceof Cluster) {
      // A pipeline must stay on one shard: one per farm, all sent at once.
      const [time, ...perFarmReplies] = await Promise.all([
        this.redis.time(),
        ...farms.map((farm) => this.redis.pipeline(commands(farm)).exec()),
      ]);
      now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
      replies = perFarmReplies.flatMap((r) => (r ?? []) as Reply[]);
    } else {
      const pipeline = this.redis.pipeline([['time'], ...farms.flatMap(commands)]);
      const all = ((await pipeline.exec()) ?? []) as Reply[];
      const [timeReply, ...rest] = all;
      if (!timeReply || timeReply[0]) throw timeReply?.[0] ?? new Error('no reply to TIME');
      const time = timeReply[1] as [string, string];
      now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
      replies = rest;
    }
    for (const [err] of replies) if (err) throw err;
    const values = replies.map(([, value]) => value);
    const states = farms.map((farm, index) =>
      this.farmState(farm, values.slice(index * perFarm, (index + 1) * perFarm), now),
    );
    const metas = farms.map((_, index) => (values[index * perFarm] as FarmMeta | null) ?? {});
    await this.addForecasts(farms, metas, states, now);
    return { now, farms: states };
  }

  /**
   * Sets each farm's forecast: from the cache while its open day and seats are those it was made
   * for (and it is younger than FORECAST_MAX_AGE_MS), else from the closed days' records, read with
   * one HMGET of the 56 days per farm. Never per scrape: a farm's forecast is made about once a day.
   */
  private async addForecasts(
    farms: readonly FarmConfig[],
    metas: readonly FarmMeta[],
    states: FarmState[],
    now: number,
  ): Promise<void> {
    const wanted: Array<{ index: number; key: string; today: number }> = [];
    farms.forEach((farm, index) => {
      const today = num(metas[index]!.day);
      const key = `${today}|${farm.seats}`;
      const cached = this.forecasts.get(farm.id);
      if (cached && cached.key === key && now - cached.madeAt < FORECAST_MAX_AGE_MS) {
        states[index]!.forecast = cached.forecast;
      } else if (today === undefined || !Number.isSafeInteger(today) || farm.seats === undefined) {
        // A farm never written has no day yet, and one without seats nothing to reach.
        this.forecasts.set(farm.id, { key, madeAt: now, forecast: null });
      } else {
        wanted.push({ index, key, today });
      }
    });
    // Sent together: on one connection they go out as a pipeline, on a Cluster each to its shard.
    const records = await Promise.all(
      wanted.map(({ index, today }) =>
        this.redis.hmget(this.keys.farm(farms[index]!.id).peaks, ...forecastDays(today).map(String)),
      ),
    );
    wanted.forEach(({ index, key, today }, i) => {
      const farm = farms[index]!;
      const days: DayPeak[] = [];
      forecastDays(today).forEach((day, d) => {
        const text = splitDayRecord(records[i]![d] ?? '').peakUsers;
        // A day without a record (the collector did not run) or without a peak is left out.
        if (text !== undefined && text !== '' && Number.isFinite(Number(text)))
          days.push({ day, peakUsers: Number(text) });
      });
      const forecast = forecastFull(days, today, farm.seats);
      this.forecasts.set(farm.id, { key, madeAt: now, forecast });
      states[index]!.forecast = forecast;
    });
    // Farms dropped from the configuration leave their entries: bounded by starting afresh.
    if (this.forecasts.size > Math.max(4 * farms.length, 1024)) this.forecasts.clear();
  }

  /**
   * Whether Redis lost the farm's data and its rebuild is not marked yet: the epoch this reader read
   * before is gone, or another one is there in its place. A collector recreates the epoch and marks
   * the hosts it asks to resend (the farm is rebuilding until they have), but a round that re-takes
   * many farms' hosts reaches the last ones seconds later, and the marks follow the new epoch by a
   * Redis round trip; until then the farm would read as empty. A new epoch is withheld for the one
   * read that finds it: by the next, its marks (if any host owes its state) say the rest. A farm
   * whose epoch this reader never saw is new, not lost: its numbers are what Redis holds.
   */
  private dataLost(farm: string, epoch: string | null): boolean {
    const seen = this.epochs.get(farm);
    if (epoch === null) return seen !== undefined;
    // Farms dropped from the configuration leave their names: bounded by starting afresh.
    if (seen === undefined && this.epochs.size >= 4096) this.epochs.clear();
    this.epochs.set(farm, epoch);
    return seen !== undefined && seen !== epoch;
  }

  private farmState(farm: FarmConfig, values: unknown[], now: number): FarmState {
    const [metaReply, users, labels, counts, lease, seen, agents, retired, sources, broker, rebuilding, epoch] =
      values as [
        FarmMeta,
        number,
        Record<string, string>,
        Record<string, string>,
        string[],
        string[],
        Record<string, string>,
        string[],
        Record<string, string>,
        StoredBroker,
        string[],
        string | null,
      ];
    const meta = metaReply ?? {};
    const seats = farm.seats;
    const overuseUsers = seats === undefined ? 0 : Math.max(0, users - seats);
    // The farm's tick rolls the day within a second; until it has, today's peak is what is in use.
    const today = Math.floor(now / DAY_MS);
    const peakUsersToday = num(meta.day) === today ? Number(meta.peakToday ?? 0) : users;
    const expiry =
      farm.license === undefined || farm.expires === undefined
        ? undefined
        : expiryStatus({
            license: farm.license,
            expiresMs: farm.expires,
            expiryGraceDays: farm.expiryGraceDays,
            nowMs: now,
          });
    const overuseGrace = overuseGraceStatus({
      startedAtMs: num(meta.graceStart),
      overuseGraceDays: farm.overuseGraceDays,
      overuseUsers,
      nowMs: now,
    });
    // A lease stays listed until the farm's clock has applied its lapse (docs/design.md §2 rule 10), so `up` changes
    // in the same step as the unverified count, never a tick before it.
    const leases = new Set(pairs(lease).map(([host]) => host));
    const retiredSet = new Set(retired);
    const expected = new Set(farm.expectedHosts);
    const hosts: HostState[] = pairs(seen).map(([host, lastSeen]) => ({
      host,
      up: leases.has(host),
      retired: retiredSet.has(host),
      lastSeen,
      // Own keys only: a host named `constructor` must not read Object's.
      connections: Number(own(counts, host) ?? 0),
      agent: own(agents, host),
      expected: expected.has(host),
      source: sourceStatus(sources[host]),
    }));
    // An expected host that never connected is down from the start, so RasAgentDown covers it.
    const known = new Set(hosts.map((host) => host.host));
    for (const host of farm.expectedHosts) {
      if (!known.has(host))
        hosts.push({
          host,
          up: false,
          retired: false,
          lastSeen: undefined,
          connections: 0,
          agent: undefined,
          expected: true,
          source: undefined,
        });
    }
    // '' is no host: the farm's own mark, set with the epoch that replaced a lost one (tick.lua).
    const owing = pairs(rebuilding).filter(([, until]) => until > now);
    const rebuildingHosts = owing.filter(([host]) => host !== '').length;
    // Read at every read, marks or none: a new epoch first seen while its hosts' marks were there
    // must not count as found replaced at the read after the last mark went.
    const lost = this.dataLost(farm.id, epoch);
    return {
      id: farm.id,
      license: farm.license,
      licenseKey: farm.licenseKey,
      customer: farm.customer,
      seats,
      users,
      overuseUsers,
      unverifiedUsers: Number(meta.unverified ?? 0),
      overuseAdmissions: Number(meta.admissions ?? 0),
      peakUsers: Number(meta.peak ?? 0),
      peakUsersToday,
      exemptConnections: Number(meta.exempt ?? 0),
      snapshotCorrections: Number(meta.corrections ?? 0),
      state: expiry?.state,
      expires: farm.expires,
      graceEnd: expiry?.graceEndMs,
      broker: farm.ras ? brokerState(broker, users, farm.ras.pollSeconds, now) : undefined,
      rebuildingHosts,
      rebuilding: owing.length > 0 || lost,
      overuseGrace,
      lastUpdate: num(meta.lastUpdate),
      connectionsByLabels: new Map(Object.entries(labels).map(([key, value]) => [key, Number(value)])),
      hosts,
      forecast: null,
    };
  }
}

/** One connection as the API lists it. */
export interface ConnectionState {
  host: string;
  id: string;
  user: string;
  admin: boolean;
  kind: string;
  via: string;
  state: string;
  since: number;
  client?: { name?: string; address?: string };
  exempt: boolean;
  consumes: boolean;
}

export interface FarmDetail {
  connections: ConnectionState[];
  /** The most recent overuseUsers users by the time they started consuming, oldest first. */
  overLimit: string[];
}

/** Reads the connections of a farm whose hosts are known (a second round trip, for the API). */
export async function readFarmDetail(
  redis: Redis | Cluster,
  keys: RedisKeys,
  farm: FarmConfig,
  state: FarmState,
): Promise<FarmDetail> {
  const pipeline = redis.pipeline();
  for (const host of state.hosts) {
    const k = keys.host(farm.id, host.host);
    pipeline.hgetall(k.conns);
    pipeline.zrange(k.elig, '0', '1');
  }
  if (state.overuseUsers > 0) pipeline.zrevrange(keys.farm(farm.id).order, 0, state.overuseUsers - 1);
  const replies = ((await pipeline.exec()) ?? []) as Reply[];
  for (const [err] of replies) if (err) throw err;
  const connections: ConnectionState[] = [];
  state.hosts.forEach((host, index) => {
    const conns = replies[index * 2]![1] as Record<string, string>;
    const exempt = new Set(replies[index * 2 + 1]![1] as string[]);
    for (const json of Object.values(conns)) {
      const session = JSON.parse(json) as Omit<ConnectionState, 'host' | 'exempt' | 'consumes'>;
      const isExempt = exempt.has(session.id);
      const counts = farm.countDisconnected || session.state === 'active';
      connections.push({ host: host.host, ...session, exempt: isExempt, consumes: counts && !isExempt });
    }
  });
  connections.sort((a, b) => a.host.localeCompare(b.host) || a.since - b.since || (a.id < b.id ? -1 : 1));
  const overLimit = state.overuseUsers > 0 ? (replies.at(-1)![1] as string[]).slice().reverse() : [];
  return { connections, overLimit };
}

/** A field of a Redis hash reply, never one inherited from Object.prototype. */
function own(record: Record<string, string> | null | undefined, key: string): string | undefined {
  return record && Object.hasOwn(record, key) ? record[key] : undefined;
}
