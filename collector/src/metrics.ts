/**
 * Every metric of docs/design.md §4, on a private registry. Farm gauges are refreshed from Redis once per
 * scrape (FarmReader: one pipelined read for all farms); the collector's own metrics are kept in
 * process.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { EXPIRY_STATES } from '@rasmon/protocol';
import type { FarmsRead } from './farm-reader.js';

const seconds = (ms: number) => ms / 1000;

/** Reasons of `ras_collector_upgrades_rejected_total`. */
export const UPGRADE_REJECTIONS = [
  'unauthorized',
  'not_found',
  'subprotocol',
  'draining',
  'hello_required',
  'bad_hello',
  'forbidden',
  'max_hosts',
  'revoked',
] as const;

export type UpgradeRejection = (typeof UPGRADE_REJECTIONS)[number];

export class CollectorMetrics {
  readonly registry = new Registry();
  private readonly farmGauges: Gauge[] = [];

  // Farm state, from Redis at scrape time.
  private readonly licenseInfo = this.farmGauge('ras_license_info', 'License of the farm (always 1)', ['farm', 'license']);
  private readonly seats = this.farmGauge('ras_license_seats', 'Licensed concurrent users', ['farm']);
  private readonly users = this.farmGauge('ras_license_users', 'Users in use now', ['farm']);
  private readonly unverified = this.farmGauge(
    'ras_license_users_unverified',
    'Users in use held only through stale hosts',
    ['farm'],
  );
  private readonly overuseUsers = this.farmGauge('ras_license_overuse_users', 'Users in use above the seats', ['farm']);
  private readonly admissions = this.farmGauge(
    'ras_license_overuse_admissions_total',
    'Users who started consuming while the farm was above its seats',
    ['farm'],
    'counter',
  );
  private readonly peak = this.farmGauge('ras_license_peak_users', 'Highest users in use since tracking began', ['farm']);
  private readonly peakToday = this.farmGauge('ras_license_peak_users_today', 'Highest users in use since 00:00 UTC', ['farm']);
  private readonly state = this.farmGauge('ras_license_state', 'License expiry state (1 for the current one)', ['farm', 'state']);
  private readonly expiry = this.farmGauge('ras_license_expiry_timestamp_seconds', 'License expiry', ['farm']);
  private readonly graceEnd = this.farmGauge(
    'ras_license_grace_end_timestamp_seconds',
    'End of the expiry grace (the expiry for sublicenses)',
    ['farm'],
  );
  private readonly overuseGraceStart = this.farmGauge(
    'ras_license_overuse_grace_start_timestamp_seconds',
    'Start of the overuse grace, while one has started',
    ['farm'],
  );
  private readonly overuseGraceEnd = this.farmGauge(
    'ras_license_overuse_grace_end_timestamp_seconds',
    'End of the overuse grace, while one has started',
    ['farm'],
  );
  private readonly overuseGraceExhausted = this.farmGauge(
    'ras_license_overuse_grace_exhausted',
    '1 once the overuse grace has run out',
    ['farm'],
  );
  private readonly deactivationRisk = this.farmGauge(
    'ras_license_deactivation_risk',
    '1 while overused with the overuse grace exhausted',
    ['farm'],
  );
  private readonly connections = this.farmGauge('ras_connections', 'Connections now', [
    'farm',
    'kind',
    'via',
    'admin',
    'session_state',
  ]);
  private readonly exempt = this.farmGauge('ras_connections_exempt', 'Admin connections exempt from licensing', ['farm']);
  private readonly hostConnections = this.farmGauge(
    'ras_host_connections',
    'Connections per host, stale hosts included',
    ['farm', 'host'],
  );
  private readonly agentUp = this.farmGauge('ras_agent_up', '1 while the host agent holds a live lease', ['farm', 'host']);
  private readonly hostRetired = this.farmGauge(
    'ras_host_retired',
    '1 while the host is retired: its connections do not count until its next snapshot',
    ['farm', 'host'],
  );
  private readonly agentLastSeen = this.farmGauge(
    'ras_agent_last_seen_timestamp_seconds',
    'Last lease renewal of the host agent',
    ['farm', 'host'],
  );
  private readonly agentInfo = this.farmGauge('ras_agent_info', 'Agent name and version (always 1)', ['farm', 'host', 'agent']);
  private readonly lastUpdate = this.farmGauge(
    'ras_farm_last_update_timestamp_seconds',
    'Last applied frame of the farm',
    ['farm'],
  );
  private readonly corrections = this.farmGauge(
    'ras_collector_snapshot_corrections_total',
    'Connections a snapshot had to add, change or end',
    ['farm'],
    'counter',
  );

  // The collector itself.
  readonly buildInfo = this.gauge('ras_collector_build_info', 'Collector build (always 1)', ['version']);
  readonly configInfo = this.gauge('ras_collector_config_info', 'Hash of the loaded configuration (always 1)', ['hash']);
  readonly agentsConnected = this.gauge('ras_collector_agents_connected', 'Agent connections this collector holds', []);
  readonly redisUp = this.gauge('ras_collector_redis_up', '1 while Redis answers', []);
  readonly frames = new Counter({
    name: 'ras_collector_frames_total',
    help: 'Frames received from agents',
    labelNames: ['type', 'result'],
    registers: [this.registry],
  });
  readonly events = new Counter({
    name: 'ras_collector_events_total',
    help: 'Items (events and snapshot sessions) received from agents',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly applyDuration = new Histogram({
    name: 'ras_collector_apply_duration_seconds',
    help: "Duration of one frame's Lua apply",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly upgradesRejected: Counter<'reason'> = new Counter({
    name: 'ras_collector_upgrades_rejected_total',
    help: 'Refused WebSocket upgrades and hellos',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  constructor(version: string) {
    collectDefaultMetrics({ register: this.registry });
    this.buildInfo.set({ version }, 1);
    // Known label values start at 0, so a healthy collector shows 0 rather than no series.
    for (const type of ['hello', 'snapshot', 'events']) {
      for (const result of ['applied', 'duplicate', 'refused']) this.frames.inc({ type, result }, 0);
    }
    for (const type of ['invalid', 'binary', 'oversized']) this.frames.inc({ type, result: 'refused' }, 0);
    for (const result of ['applied', 'duplicate', 'rejected']) this.events.inc({ result }, 0);
    for (const reason of UPGRADE_REJECTIONS) this.upgradesRejected.inc({ reason }, 0);
  }

  private gauge(name: string, help: string, labelNames: string[]): Gauge {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  /** A series read from Redis at scrape time; reset before each refresh. */
  private farmGauge(name: string, help: string, labelNames: string[], type: 'gauge' | 'counter' = 'gauge'): Gauge {
    const gauge = this.gauge(name, help, labelNames);
    // Counters kept in Redis are set from their stored value, so they are Gauges exposed as counters.
    if (type === 'counter') (gauge as unknown as { type: string }).type = 'counter';
    this.farmGauges.push(gauge);
    return gauge;
  }

  setConfigHash(hash: string): void {
    this.configInfo.reset();
    this.configInfo.set({ hash }, 1);
  }

  /** Replaces every farm series with what was read; farms not read vanish. */
  setFarms(read: FarmsRead | undefined): void {
    for (const gauge of this.farmGauges) gauge.reset();
    if (!read) return;
    for (const farm of read.farms) {
      const f = { farm: farm.id };
      this.licenseInfo.set({ farm: farm.id, license: farm.license }, 1);
      this.seats.set(f, farm.seats);
      this.users.set(f, farm.users);
      this.unverified.set(f, farm.unverifiedUsers);
      this.overuseUsers.set(f, farm.overuseUsers);
      this.admissions.set(f, farm.overuseAdmissions);
      this.peak.set(f, farm.peakUsers);
      this.peakToday.set(f, farm.peakUsersToday);
      for (const state of EXPIRY_STATES) this.state.set({ farm: farm.id, state }, state === farm.state ? 1 : 0);
      this.expiry.set(f, seconds(farm.expires));
      this.graceEnd.set(f, seconds(farm.graceEnd));
      const grace = farm.overuseGrace;
      if (grace.started) {
        this.overuseGraceStart.set(f, seconds(grace.startedAtMs!));
        this.overuseGraceEnd.set(f, seconds(grace.endMs!));
      }
      this.overuseGraceExhausted.set(f, grace.exhausted ? 1 : 0);
      this.deactivationRisk.set(f, grace.deactivationRisk ? 1 : 0);
      for (const [key, count] of farm.connectionsByLabels) {
        const [kind, via, admin, sessionState] = key.split('|');
        this.connections.set({ farm: farm.id, kind, via, admin, session_state: sessionState }, count);
      }
      this.exempt.set(f, farm.exemptConnections);
      for (const host of farm.hosts) {
        const h = { farm: farm.id, host: host.host };
        this.hostConnections.set(h, host.connections);
        this.agentUp.set(h, host.up ? 1 : 0);
        this.hostRetired.set(h, host.retired ? 1 : 0);
        if (host.lastSeen !== undefined) this.agentLastSeen.set(h, seconds(host.lastSeen));
        if (host.agent !== undefined) this.agentInfo.set({ ...h, agent: host.agent }, 1);
      }
      if (farm.lastUpdate !== undefined) this.lastUpdate.set(f, seconds(farm.lastUpdate));
      this.corrections.set(f, farm.snapshotCorrections);
    }
  }
}
