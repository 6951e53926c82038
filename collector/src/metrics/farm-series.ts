/**
 * The farm series of /metrics (docs/design.md §4), rendered as Prometheus text straight from the
 * state read from Redis, one farm at a time, and kept per farm as encoded bytes (one buffer per
 * family), so that a scrape copies bytes instead of joining and encoding megabytes of strings in
 * one go; the joined body is reused while no farm was re-read. A scrape re-reads only the farms
 * whose state changed since (a version every writing script bumps in the farm's meta hash, so a
 * change made through any collector counts) or that were read more than a second ago (time alone
 * moves last-seen stamps, leases and expiry states). Each farm's values come from Redis, so every
 * collector exports the same.
 */
import { setImmediate as yieldToEvents } from 'node:timers/promises';
import { CONNECTION_LABEL_KEYS, EXPIRY_STATES } from '@rasmon/protocol';
import type { FarmConfig } from '../config/config.js';
import type { FarmReader, FarmState } from '../engine/farm-reader.js';
import { isBrokerHost } from '../broker/broker-sessions.js';

interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  /** The lines of one farm. */
  lines(farm: FarmState): string;
}

const seconds = (ms: number) => ms / 1000;

/** Escapes a label value for the text format. */
function escape(value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value;
}

function labels(pairs: Record<string, string>): string {
  return Object.entries(pairs)
    .map(([name, value]) => `${name}="${escape(value)}"`)
    .join(',');
}

function farmFamily(
  name: string,
  help: string,
  value: (farm: FarmState) => number | undefined,
  type: Family['type'] = 'gauge',
): Family {
  return {
    name,
    help,
    type,
    lines: (farm) => {
      const v = value(farm);
      return v === undefined ? '' : `${name}{farm="${escape(farm.id)}"} ${v}\n`;
    },
  };
}

/**
 * A family per host. `agents`: only hosts an agent holds, not a broker source's pseudo-host
 * (`broker/vdi`...): those have no agent, and their state is the broker's (`ras_broker_*`).
 */
function hostFamily(
  name: string,
  help: string,
  value: (host: FarmState['hosts'][number]) => number | undefined,
  hosts: 'all' | 'agents' = 'agents',
): Family {
  return {
    name,
    help,
    type: 'gauge',
    lines: (farm) => {
      const f = escape(farm.id);
      let out = '';
      for (const host of farm.hosts) {
        if (hosts === 'agents' && isBrokerHost(host.host)) continue;
        const v = value(host);
        if (v !== undefined) out += `${name}{farm="${f}",host="${escape(host.host)}"} ${v}\n`;
      }
      return out;
    },
  };
}

const REBUILDING = farmFamily(
  'ras_farm_rebuilding',
  "1 while the farm's state is rebuilt after Redis lost it (its other series are withheld meanwhile)",
  (farm) => (farm.rebuilding ? 1 : 0),
);

export const FARM_FAMILIES: readonly Family[] = [
  REBUILDING,
  {
    name: 'ras_license_info',
    help: 'License of the farm (always 1)',
    type: 'gauge',
    // license_key groups the farms activated with one key; a farm without one has no such label.
    lines: (farm) =>
      `ras_license_info{${labels({ farm: farm.id, license: farm.license ?? 'unknown', ...(farm.licenseKey === undefined ? {} : { license_key: farm.licenseKey }) })}} 1\n`,
  },
  farmFamily('ras_license_seats', 'Licensed concurrent users', (farm) => farm.seats),
  farmFamily('ras_license_users', 'Users in use now', (farm) => farm.users),
  farmFamily(
    'ras_license_users_unverified',
    'Users in use held only through stale hosts',
    (farm) => farm.unverifiedUsers,
  ),
  farmFamily('ras_license_overuse_users', 'Users in use above the seats', (farm) => farm.overuseUsers),
  farmFamily(
    'ras_license_overuse_admissions_total',
    'Users who started consuming while the farm was above its seats',
    (farm) => farm.overuseAdmissions,
    'counter',
  ),
  farmFamily('ras_license_peak_users', 'Highest users in use since tracking began', (farm) => farm.peakUsers),
  farmFamily('ras_license_peak_users_today', 'Highest users in use since 00:00 UTC', (farm) => farm.peakUsersToday),
  // Absent while the forecast says nothing (too few days, no rising trend, no seats).
  farmFamily(
    'ras_license_forecast_full_days',
    'Days until the trend of the daily peak reaches the seats (0: it has)',
    (farm) => farm.forecast?.fullInDays,
  ),
  {
    name: 'ras_license_state',
    help: 'License expiry state (1 for the current one)',
    type: 'gauge',
    // None while the expiry is not known (ras.adopt before RAS first answered).
    lines: (farm) =>
      farm.state === undefined
        ? ''
        : EXPIRY_STATES.map(
            (state) => `ras_license_state{${labels({ farm: farm.id, state })}} ${state === farm.state ? 1 : 0}\n`,
          ).join(''),
  },
  farmFamily('ras_license_expiry_timestamp_seconds', 'License expiry', (farm) =>
    farm.expires === undefined ? undefined : seconds(farm.expires),
  ),
  farmFamily(
    'ras_license_grace_end_timestamp_seconds',
    'End of the expiry grace (the expiry for sublicenses)',
    (farm) => (farm.graceEnd === undefined ? undefined : seconds(farm.graceEnd)),
  ),
  farmFamily(
    'ras_license_overuse_grace_start_timestamp_seconds',
    'Start of the overuse grace, while one has started',
    (farm) => (farm.overuseGrace.started ? seconds(farm.overuseGrace.startedAtMs!) : undefined),
  ),
  farmFamily(
    'ras_license_overuse_grace_end_timestamp_seconds',
    'End of the overuse grace, while one has started',
    (farm) => (farm.overuseGrace.started ? seconds(farm.overuseGrace.endMs!) : undefined),
  ),
  farmFamily('ras_license_overuse_grace_exhausted', '1 once the overuse grace has run out', (farm) =>
    farm.overuseGrace.exhausted ? 1 : 0,
  ),
  farmFamily('ras_license_deactivation_risk', '1 while overused with the overuse grace exhausted', (farm) =>
    farm.overuseGrace.deactivationRisk ? 1 : 0,
  ),
  {
    name: 'ras_connections',
    help: 'Connections now',
    type: 'gauge',
    // All 16 label sets, 0 where the farm has none (Redis keeps only the non-zero ones).
    lines: (farm) => {
      let out = '';
      for (const key of CONNECTION_LABEL_KEYS) {
        const [kind = '', via = '', admin = '', sessionState = ''] = key.split('|');
        const count = farm.connectionsByLabels.get(key) ?? 0;
        out += `ras_connections{${labels({ farm: farm.id, kind, via, admin, session_state: sessionState })}} ${count}\n`;
      }
      return out;
    },
  },
  farmFamily('ras_connections_exempt', 'Admin connections exempt from licensing', (farm) => farm.exemptConnections),
  hostFamily('ras_host_connections', 'Connections per host, stale hosts included', (host) => host.connections, 'all'),
  hostFamily('ras_agent_up', '1 while the host agent holds a live lease', (host) => (host.up ? 1 : 0)),
  hostFamily(
    'ras_host_retired',
    '1 while the host is retired: its connections do not count until its next snapshot',
    (host) => (host.retired ? 1 : 0),
    'all',
  ),
  hostFamily('ras_host_expected', "1 for a host listed in the farm's expectedHosts", (host) =>
    host.expected ? 1 : undefined,
  ),
  hostFamily(
    'ras_agent_source_up',
    "1 while the host agent's session source lists sessions, 0 while it fails (from the agent's status)",
    (host) => (host.source === undefined ? undefined : host.source.ok ? 1 : 0),
  ),
  hostFamily(
    'ras_agent_source_last_success_timestamp_seconds',
    "When the host agent's session source last listed the sessions",
    (host) => (host.source?.lastListAt === undefined ? undefined : seconds(host.source.lastListAt)),
  ),
  hostFamily('ras_agent_last_seen_timestamp_seconds', 'Last lease renewal of the host agent', (host) =>
    host.lastSeen === undefined ? undefined : seconds(host.lastSeen),
  ),
  {
    name: 'ras_agent_info',
    help: 'Agent name and version (always 1)',
    type: 'gauge',
    lines: (farm) => {
      let out = '';
      for (const host of farm.hosts) {
        if (host.agent !== undefined && !isBrokerHost(host.host))
          out += `ras_agent_info{${labels({ farm: farm.id, host: host.host, agent: host.agent })}} 1\n`;
      }
      return out;
    },
  },
  farmFamily('ras_farm_last_update_timestamp_seconds', 'Last applied frame of the farm', (farm) =>
    farm.lastUpdate === undefined ? undefined : seconds(farm.lastUpdate),
  ),
  farmFamily(
    'ras_snapshot_corrections_total',
    'Connections a snapshot had to add, change or end',
    (farm) => farm.snapshotCorrections,
    'counter',
  ),
  // The RAS broker connector (docs/design.md §4, "Broker connector"): only farms with a `ras` block.
  farmFamily('ras_broker_up', "1 when the last poll of the farm's RAS broker answered", (farm) =>
    farm.broker === undefined ? undefined : farm.broker.up ? 1 : 0,
  ),
  farmFamily(
    'ras_broker_license_users',
    'Users RAS counts now (its usersLicenseInfo)',
    (farm) => farm.broker?.license?.users,
  ),
  farmFamily(
    'ras_broker_license_seats',
    'Seats RAS reports (its installedUsers)',
    (farm) => farm.broker?.license?.seats,
  ),
  farmFamily(
    'ras_broker_license_peak_users',
    'Peak users RAS reports (its usersPeak)',
    (farm) => farm.broker?.license?.peakUsers,
  ),
  farmFamily(
    'ras_broker_license_expiry_timestamp_seconds',
    'License expiry RAS reports (its expiryDate, 00:00 UTC)',
    (farm) =>
      farm.broker?.license?.expiryDate === undefined
        ? undefined
        : seconds(Date.parse(`${farm.broker.license.expiryDate}T00:00:00Z`)),
  ),
  farmFamily(
    'ras_broker_grace_days_left',
    'Days of grace RAS reports left, while a grace runs',
    (farm) => farm.broker?.license?.graceDaysLeft,
  ),
  {
    name: 'ras_broker_needs_attention',
    help: "1 while RAS says its license needs attention; alert_message is RAS's alertMessage",
    type: 'gauge',
    lines: (farm) => {
      const license = farm.broker?.license;
      if (!license) return '';
      const message = (license.alertMessage ?? '').slice(0, 200);
      return `ras_broker_needs_attention{${labels({ farm: farm.id, alert_message: message })}} ${license.needsAttention ? 1 : 0}\n`;
    },
  },
  {
    name: 'ras_broker_sessions',
    help: 'Sessions imported from the RAS broker, per source',
    type: 'gauge',
    lines: (farm) => {
      const imported = farm.broker?.sessions?.imported;
      if (!imported) return '';
      let out = '';
      for (const [source, count] of Object.entries(imported))
        out += `ras_broker_sessions{${labels({ farm: farm.id, source })}} ${count}\n`;
      return out;
    },
  },
  farmFamily(
    'ras_license_count_drift_users',
    "rasmon's users in use minus RAS's own count",
    (farm) => farm.broker?.driftUsers,
  ),
];

/**
 * One farm's lines, per family in FARM_FAMILIES order. While the farm is rebuilt after Redis lost
 * its data, only `ras_farm_rebuilding` 1: its other series are withheld rather than shown low, so
 * that rules and dashboards hold their last exact values (the `:held` rules) instead of seeing the
 * users leave (docs/design.md §6).
 */
export function renderFarm(farm: FarmState): string[] {
  if (farm.rebuilding) return FARM_FAMILIES.map((family) => (family === REBUILDING ? family.lines(farm) : ''));
  return FARM_FAMILIES.map((family) => family.lines(farm));
}

/** The HELP and TYPE lines that open each family, in FARM_FAMILIES order. */
const FAMILY_HEADERS: readonly Buffer[] = FARM_FAMILIES.map((family) =>
  Buffer.from(`# HELP ${family.name} ${family.help}\n# TYPE ${family.name} ${family.type}\n`),
);

/**
 * The text of every family, with HELP and TYPE, from each farm's rendered lines (one buffer per
 * family, as renderFarm's strings): a copy of bytes already encoded, no string building.
 */
export function joinFarms(farms: ReadonlyArray<readonly Buffer[]>): Buffer {
  const parts: Buffer[] = [];
  FAMILY_HEADERS.forEach((header, i) => {
    parts.push(header);
    for (const lines of farms) parts.push(lines[i]!);
  });
  return Buffer.concat(parts);
}

interface Entry {
  config: FarmConfig;
  version: string | null;
  readAt: number;
  /** Withheld as rebuilding: read again at every scrape (its end need not move the version). */
  rebuilding: boolean;
  /** The farm's lines per family, encoded once when read: kept as bytes, not as strings on the heap. */
  lines: Buffer[];
}

/** Farms read from Redis at once, in one pipeline: a small reply, decoded in one go, holds little up. */
const READ_BATCH = 5;
/** A farm read longer ago than this is read again. */
const MAX_AGE_MS = 1000;

export class FarmSeries {
  private readonly entries = new Map<string, Entry>();
  private queue: Promise<unknown> = Promise.resolve();
  /** The last body and the farms it was joined from; served again while none of them was re-read. */
  private body: { farms: readonly FarmConfig[]; entries: Entry[]; text: Buffer } | undefined;

  constructor(private readonly reader: FarmReader) {}

  /**
   * The farm series of these farms, re-reading what changed. Scrapes are served one after the
   * other; between farms the event loop runs, so agents' frames are not held up by a scrape.
   * Rejects when Redis cannot answer.
   */
  render(farms: readonly FarmConfig[]): Promise<Buffer> {
    const next = this.queue.then(
      () => this.renderNow(farms),
      () => this.renderNow(farms),
    );
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Forgets everything read (after a failed read, so that no old value outlives it). */
  clear(): void {
    this.entries.clear();
    this.body = undefined;
  }

  private async renderNow(farms: readonly FarmConfig[]): Promise<Buffer> {
    const versions = await this.reader.versions(farms);
    const now = Date.now();
    const stale = farms.filter((farm, i) => {
      const entry = this.entries.get(farm.id);
      return (
        !entry ||
        entry.rebuilding ||
        entry.config !== farm ||
        entry.version !== versions[i] ||
        now - entry.readAt >= MAX_AGE_MS
      );
    });
    const versionOf = new Map(farms.map((farm, i) => [farm.id, versions[i]!]));
    const batches: FarmConfig[][] = [];
    for (let first = 0; first < stale.length; first += READ_BATCH) batches.push(stale.slice(first, first + READ_BATCH));
    // The next batch is read while this one is rendered, so the round trips do not add up.
    const readBatch = (batch: FarmConfig[] | undefined) => {
      const read = batch && this.reader.read(batch);
      // Awaited below; until then its failure must not count as unhandled.
      read?.catch(() => undefined);
      return read;
    };
    let next = readBatch(batches[0]);
    for (const [b, batch] of batches.entries()) {
      const read = await next!;
      next = readBatch(batches[b + 1]);
      const readAt = Date.now();
      // One farm per turn of the event loop: rendering a batch at once would hold frames up.
      for (const [i, state] of read.farms.entries()) {
        const config = batch[i]!;
        const lines = renderFarm(state).map((text) => Buffer.from(text));
        this.entries.set(config.id, {
          config,
          version: versionOf.get(config.id)!,
          readAt,
          rebuilding: state.rebuilding,
          lines,
        });
        await yieldToEvents();
      }
    }
    const ids = new Set(farms.map((farm) => farm.id));
    for (const id of this.entries.keys()) if (!ids.has(id)) this.entries.delete(id);
    const entries = farms.map((farm) => this.entries.get(farm.id)!);
    const last = this.body;
    if (last && last.farms === farms && entries.every((entry, i) => entry === last.entries[i])) return last.text;
    const text = joinFarms(entries.map((entry) => entry.lines));
    this.body = { farms, entries, text };
    return text;
  }
}
