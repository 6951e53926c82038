/**
 * The JSON API (docs/design.md §4): `/api/v1/farms`, `/api/v1/farms/{farm}`, `/api/v1/farms/{farm}/peaks`.
 * Timestamps are ISO-8601 strings. It names users and client addresses: outside a lab, protect it
 * with `api.tokensSha256`.
 */
import { disagreements } from '../broker/adopted-license.js';
import { isBrokerHost } from '../broker/broker-sessions.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Cluster, Redis } from 'ioredis';
import { DAY_MS, utcDay } from '@rasmon/protocol';
import { bearerToken } from '../config/bearer-token.js';
import { sha256Hex, type CollectorConfig, type FarmConfig } from '../config/config.js';
import type { FarmDirectory } from '../config/farm-directory.js';
import { readFarmDetail, type FarmReader, type FarmState } from '../engine/farm-reader.js';
import { splitDayRecord, type RedisKeys } from '../engine/redis-schema.js';
import { BAD_FARM_ID, farmIdParam, ReportApi } from './report-api.js';

/** ISO-8601, or null for no time or one a Date cannot hold (a stored value must not fail the whole answer). */
const iso = (ms: number | undefined) => {
  if (ms === undefined) return null;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
};

/** An expected host whose agent has never reported: neither up nor stale, just missing. */
function neverReported(host: { expected: boolean; up: boolean; retired: boolean; lastSeen: unknown }): boolean {
  return host.expected && !host.up && !host.retired && host.lastSeen === undefined;
}

/**
 * RAS's own figures beside rasmon's, for a farm with a `ras` block (docs/design.md §4, "Broker
 * connector"); null for one without.
 */
export function brokerSummary(farm: FarmState) {
  const broker = farm.broker;
  if (!broker) return null;
  const license = broker.license;
  const rasUsers = license?.users;
  return {
    up: broker.up,
    lastPollAt: iso(broker.lastPollAt),
    lastAnswerAt: iso(broker.lastOkAt),
    reason: broker.reason ?? null,
    message: broker.message ?? null,
    users: rasUsers ?? null,
    seats: license?.seats ?? null,
    peakUsers: license?.peakUsers ?? null,
    expiryDate: license?.expiryDate ?? null,
    graceState: license?.graceState ?? null,
    graceDaysLeft: license?.graceDaysLeft ?? null,
    needsAttention: license?.needsAttention ?? false,
    statusMessage: license?.statusMessage ?? null,
    alertMessage: license?.alertMessage ?? null,
    sessions: broker.sessions?.imported ?? {},
    sessionsSkipped: broker.sessions?.skipped ?? 0,
    sessionsRejected: broker.sessions?.rejected ?? 0,
    unmappedUpns: broker.sessions?.unmappedUpns ?? 0,
    driftUsers: broker.driftUsers ?? null,
    text:
      rasUsers === undefined
        ? `RAS has given no count yet, rasmon ${farm.users}`
        : `RAS counts ${rasUsers}, rasmon ${farm.users}`,
  };
}

/** Where a farm's seats, license and expiry come from, and what the configuration says otherwise. */
export interface LicenseOrigin {
  licenseFrom: 'config' | 'ras';
  /** The configured values RAS contradicts (ras.adopt follows RAS). */
  configDisagrees: Array<{ field: string; configured: number | string | null; ras: number | string | null }>;
}

/** The summary fields of a farm, as `/api/v1/farms` lists them. */
export function farmSummary(farm: FarmState, origin?: LicenseOrigin) {
  const grace = farm.overuseGrace;
  // The host counts are of agents' hosts, as ras_agent_up: a broker source's pseudo-host is the broker's.
  const agentHosts = farm.hosts.filter((host) => !isBrokerHost(host.host));
  return {
    id: farm.id,
    license: farm.license ?? null,
    licenseKey: farm.licenseKey ?? null,
    seats: farm.seats ?? null,
    users: farm.users,
    overuseUsers: farm.overuseUsers,
    unverifiedUsers: farm.unverifiedUsers,
    overuseAdmissions: farm.overuseAdmissions,
    peakUsers: farm.peakUsers,
    peakUsersToday: farm.peakUsersToday,
    exemptConnections: farm.exemptConnections,
    snapshotCorrections: farm.snapshotCorrections,
    state: farm.state ?? null,
    expires: iso(farm.expires),
    graceEnd: iso(farm.graceEnd),
    overuseGrace: {
      started: grace.started,
      startedAt: iso(grace.startedAtMs),
      endsAt: iso(grace.endMs),
      exhausted: grace.exhausted,
    },
    deactivationRisk: farm.overuseGrace.deactivationRisk,
    hostsUp: agentHosts.filter((host) => host.up).length,
    hostsStale: agentHosts.filter((host) => !host.up && !host.retired && !neverReported(host)).length,
    hostsExpected: agentHosts.filter(neverReported).length,
    hostsRetired: agentHosts.filter((host) => host.retired).length,
    hostsTotal: agentHosts.length,
    lastUpdate: iso(farm.lastUpdate),
    licenseFrom: origin?.licenseFrom ?? 'config',
    configDisagrees: origin?.configDisagrees ?? [],
    broker: brokerSummary(farm),
  };
}

export interface ApiOptions {
  redis: Redis | Cluster;
  keys: RedisKeys;
  reader: FarmReader;
  config: () => CollectorConfig;
  /** The farms of the running configuration. */
  farms: () => FarmDirectory;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}

export class Api {
  private readonly reports: ReportApi;

  constructor(private readonly options: ApiOptions) {
    this.reports = new ReportApi({
      redis: options.redis,
      keys: options.keys,
      reader: options.reader,
      now: async () => (await options.reader.read([])).now,
      farms: options.farms,
    });
  }

  /** Handles a request under `/api/`; returns false when the path is not the API's. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const match = /^\/api\/v1\/farms(?:\/([^/]+)(\/peaks)?)?\/?$/.exec(path);
    if (!path.startsWith('/api/')) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, { error: 'only GET is supported' }, { Allow: 'GET, HEAD' });
      return true;
    }
    const config = this.options.config();
    if (!this.authorized(req, config)) {
      send(
        res,
        401,
        { error: 'a bearer token listed in api.tokensSha256 is required' },
        { 'WWW-Authenticate': 'Bearer realm="rasmon"' },
      );
      return true;
    }
    try {
      if (await this.reports.handle(req, res, path)) return true;
    } catch (err) {
      send(res, 503, { error: `Redis cannot answer: ${(err as Error).message}` });
      return true;
    }
    if (!match) {
      send(res, 404, { error: `no such API path: ${path}` });
      return true;
    }
    const [, farmId, peaks] = match;
    try {
      if (farmId === undefined) {
        const read = await this.options.reader.read(this.options.farms().list());
        send(res, 200, { farms: read.farms.map((farm) => farmSummary(farm, this.origin(farm.id))) });
        return true;
      }
      const id = farmIdParam(farmId);
      if (id === undefined) {
        send(res, 400, BAD_FARM_ID);
        return true;
      }
      const farm = this.options.farms().get(id);
      if (!farm) {
        send(res, 404, { error: `no farm ${id}` });
        return true;
      }
      send(res, 200, peaks ? await this.peaks(farm) : await this.detail(farm));
    } catch (err) {
      send(res, 503, { error: `Redis cannot answer: ${(err as Error).message}` });
    }
    return true;
  }

  /** Whether the farm's license values come from RAS now, and what its configuration says otherwise. */
  private origin(id: string): LicenseOrigin {
    const farms = this.options.farms();
    const adopted = farms.adopted(id);
    const configured = farms.configured(id);
    if (!adopted || !configured) return { licenseFrom: 'config', configDisagrees: [] };
    return { licenseFrom: 'ras', configDisagrees: disagreements(configured, adopted) };
  }

  private authorized(req: IncomingMessage, config: CollectorConfig): boolean {
    if (config.api.tokensSha256.length === 0) return true;
    const token = bearerToken(req);
    return token !== undefined && config.api.tokensSha256.includes(sha256Hex(token));
  }

  private async detail(farm: FarmConfig) {
    const read = await this.options.reader.read([farm]);
    const state = read.farms[0]!;
    const detail = await readFarmDetail(this.options.redis, this.options.keys, farm, state);
    return {
      ...farmSummary(state, this.origin(state.id)),
      hosts: state.hosts.map((host) => ({
        host: host.host,
        up: host.up,
        retired: host.retired,
        lastSeen: iso(host.lastSeen),
        connections: host.connections,
        agent: host.agent ?? null,
        expected: host.expected,
        source:
          host.source === undefined
            ? null
            : { name: host.source.name, ok: host.source.ok, lastListAt: iso(host.source.lastListAt) },
        sourceError: host.source?.error ?? null,
      })),
      connections: detail.connections.map((connection) => ({ ...connection, since: iso(connection.since) })),
      overLimit: detail.overLimit,
    };
  }

  private async peaks(farm: FarmConfig) {
    const stored = await this.options.redis.hgetall(this.options.keys.farm(farm.id).peaks);
    const peaks = Object.entries(stored)
      // A finished day holds its whole record, the day still open its peak so far.
      .map(([day, value]) => ({ day: Number(day), users: Number(splitDayRecord(value).peakUsers) }))
      .sort((a, b) => a.day - b.day)
      .map(({ day, users }) => ({ day: utcDay(day * DAY_MS), users }));
    return { peaks };
  }
}
