/**
 * The farm documents of the API (docs/api.md): `/api/v1/farms` lists each farm's summary, and
 * `/api/v1/farms/{farm}` adds its hosts and connections. Built from the state Redis holds, in the
 * API's worker thread (farm-document-worker.ts) for the one-farm document, which a big farm makes
 * megabytes of JSON.
 */
import type { Cluster, Redis } from 'ioredis';
import { isBrokerHost } from '../broker/broker-sessions.js';
import type { FarmConfig } from '../config/config.js';
import { readFarmDetail, type FarmReader, type FarmState } from '../engine/farm-reader.js';
import type { RedisKeys } from '../engine/redis-schema.js';

/** ISO-8601, or null for no time or one a Date cannot hold (a stored value must not fail the whole answer). */
export const iso = (ms: number | undefined) => {
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
    customer: farm.customer ?? null,
    seats: farm.seats ?? null,
    users: farm.users,
    overuseUsers: farm.overuseUsers,
    unverifiedUsers: farm.unverifiedUsers,
    overuseAdmissions: farm.overuseAdmissions,
    peakUsers: farm.peakUsers,
    peakUsersToday: farm.peakUsersToday,
    // When the trend of the daily peak reaches the seats (docs/design.md §4, "Forecast"), or null.
    forecast: farm.forecast === null ? null : { fullInDays: farm.forecast.fullInDays, fullBy: farm.forecast.fullBy },
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
    rebuilding: farm.rebuilding,
    licenseFrom: origin?.licenseFrom ?? 'config',
    configDisagrees: origin?.configDisagrees ?? [],
    broker: brokerSummary(farm),
  };
}

/** A farm's summary and hosts: the part of its document that time alone changes (leases, last seen). */
export function documentHead(state: FarmState, origin: LicenseOrigin) {
  return {
    ...farmSummary(state, origin),
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
  };
}

/** A farm's connections and the users over the limit: what only a frame changes. */
export async function documentConnections(redis: Redis | Cluster, keys: RedisKeys, farm: FarmConfig, state: FarmState) {
  const detail = await readFarmDetail(redis, keys, farm, state);
  return {
    connections: detail.connections.map((connection) => ({ ...connection, since: iso(connection.since) })),
    overLimit: detail.overLimit,
  };
}

/** The whole document of one farm: its summary, its hosts, its connections and the users over the limit. */
export async function farmDocument(
  redis: Redis | Cluster,
  keys: RedisKeys,
  reader: FarmReader,
  farm: FarmConfig,
  origin: LicenseOrigin,
) {
  const read = await reader.read([farm]);
  const state = read.farms[0]!;
  return { ...documentHead(state, origin), ...(await documentConnections(redis, keys, farm, state)) };
}
