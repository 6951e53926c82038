/**
 * The collector's own metrics of docs/design.md §4, kept in process on a private registry. The farm
 * series, read from Redis, are rendered by farm-series.ts.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MISLABELLED_DEFAULTS } from '@rasmon/protocol/kit';
import { BROKER_FAILURE_REASONS } from '../broker/broker-error.js';

/** Default metrics whose count walks one entry per connection, and how long such a count is reused. */
const CONNECTION_WALKS = ['process_open_fds', 'nodejs_active_handles', 'nodejs_active_resources'];
const CONNECTION_WALK_MAX_AGE_MS = 10_000;

/** Reasons of `rasmon_collector_upgrades_rejected_total`. */
export const UPGRADE_REJECTIONS = [
  'unauthorized',
  'not_found',
  'subprotocol',
  'draining',
  'hello_required',
  'bad_hello',
  'forbidden',
  'max_hosts',
  'token_hosts',
  'certificate_name',
  'revoked',
  'rate_limited',
  'too_many_connections',
] as const;

export type UpgradeRejection = (typeof UPGRADE_REJECTIONS)[number];

/** Reasons of `rasmon_collector_proxy_header_refused_total` (ingest/proxy-header.ts). */
export const PROXY_HEADER_REFUSALS = ['missing', 'malformed', 'too_long', 'timeout'] as const;
export type ProxyHeaderRefusal = (typeof PROXY_HEADER_REFUSALS)[number];

/** Reasons of `rasmon_collector_farm_throttled_total`: the farm budget a frame waited for. */
export const FARM_THROTTLES = ['bytes', 'apply'] as const;

/**
 * Reasons of `rasmon_collector_farm_quota_refused_total`: the farm quota a session was refused by
 * (docs/design.md §6): `sessions` (the farm's `maxSessions`), `new_users` (`maxNewUsersPerMinute`).
 */
export const FARM_QUOTA_REFUSALS = ['sessions', 'new_users'] as const;

export type FarmQuotaRefusal = (typeof FARM_QUOTA_REFUSALS)[number];

/** A farm's quotas as its gauges show them. */
export interface FarmQuotaValues {
  farm: string;
  maxSessions: number;
  maxNewUsersPerMinute: number;
}

/** Reasons of `rasmon_collector_agents_dropped_total`: an agent cut off by the collector, not refused. */
export const AGENT_DROPS = ['not_reading', 'silent'] as const;

export type AgentDrop = (typeof AGENT_DROPS)[number];

/**
 * Reasons of `rasmon_collector_agents_refused_total`: hellos refused for who they claim to be once
 * the token was accepted. `host_bound`: the host is bound to another agent's host key
 * (docs/design.md §6, "Host binding").
 */
export const AGENT_REFUSALS = ['host_bound'] as const;

export type AgentRefusal = (typeof AGENT_REFUSALS)[number];

/**
 * Reasons of `rasmon_collector_redis_refusing_writes`: the error Redis answers a write with while it
 * answers PING (maxmemory reached, a replica, a failed background save, too few replicas).
 */
export const REDIS_WRITE_REFUSALS = ['oom', 'readonly', 'misconf', 'noreplicas'] as const;

export type RedisWriteRefusal = (typeof REDIS_WRITE_REFUSALS)[number];

/** The error a Redis that refuses writes answers with, if `message` is one. */
export function writeRefusalOf(message: string): RedisWriteRefusal | undefined {
  const error = /^(OOM|READONLY|MISCONF|NOREPLICAS)\b/.exec(message)?.[1];
  return error === undefined ? undefined : (error.toLowerCase() as RedisWriteRefusal);
}

/** How long a frame Redis refused keeps readiness and refusing_writes saying so (ms). */
export const FRAME_REFUSAL_HOLD_MS = 10_000;

export class CollectorMetrics {
  readonly registry = new Registry();

  // The collector itself.
  readonly buildInfo = this.gauge('rasmon_collector_build_info', 'Collector build (always 1)', ['version']);
  readonly configInfo = this.gauge('rasmon_collector_config_info', 'Hash of the loaded configuration (always 1)', [
    'hash',
  ]);
  readonly agentsConnected = this.gauge(
    'rasmon_collector_agents_connected',
    'Agent connections this collector holds',
    [],
  );
  readonly redisUp = this.gauge(
    'rasmon_collector_redis_up',
    '1 while Redis answers and takes writes (0 also while it refuses them: OOM, READONLY)',
    [],
  );
  readonly redisRefusingWrites: Gauge<'reason'> = new Gauge({
    name: 'rasmon_collector_redis_refusing_writes',
    help: '1 while Redis answers but refuses writes, by the error it gives (oom, readonly, misconf, noreplicas); 0 otherwise',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly frames = new Counter({
    name: 'rasmon_collector_frames_total',
    help: 'Frames received from agents',
    labelNames: ['type', 'result'],
    registers: [this.registry],
  });
  readonly events = new Counter({
    name: 'rasmon_collector_events_total',
    help: 'Items (events and snapshot sessions) received from agents',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly applyDuration = new Histogram({
    name: 'rasmon_collector_apply_duration_seconds',
    help: "Duration of one frame's Lua apply",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly upgradesRejected: Counter<'reason'> = new Counter({
    name: 'rasmon_collector_upgrades_rejected_total',
    help: 'Refused WebSocket upgrades and hellos',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  readonly proxyHeaderRefused: Counter<'reason'> = new Counter({
    name: 'rasmon_collector_proxy_header_refused_total',
    help: 'Connections from a trusted load balancer destroyed for their PROXY protocol header',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  readonly agentsDropped: Counter<'reason'> = new Counter({
    name: 'rasmon_collector_agents_dropped_total',
    help: 'Agent connections the collector cut off: not_reading (its unsent acks passed the output limit), silent (no pong for two heartbeats)',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  readonly agentsRefused: Counter<'reason'> = new Counter({
    name: 'rasmon_collector_agents_refused_total',
    help: "Agent hellos refused for the host they claim: host_bound (the host is bound to another agent's host key)",
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly supersedes: Counter<'farm'> = new Counter({
    name: 'rasmon_collector_supersedes_total',
    help: 'Live agent connections of a farm that a newer connection took the host from (counted by the collector holding the older one)',
    labelNames: ['farm'],
    registers: [this.registry],
  });

  /** The configured farms: their supersedes start at 0; farms no longer configured lose theirs. */
  setFarms(farms: readonly string[]): void {
    const wanted = new Set(farms);
    for (const farm of this.farms) {
      if (wanted.has(farm)) continue;
      this.supersedes.remove({ farm });
      for (const reason of FARM_THROTTLES) this.farmThrottled.remove({ farm, reason });
      for (const reason of FARM_QUOTA_REFUSALS) this.farmQuotaRefused.remove({ farm, reason });
    }
    for (const farm of wanted) {
      if (this.farms.has(farm)) continue;
      this.supersedes.inc({ farm }, 0);
      for (const reason of FARM_THROTTLES) this.farmThrottled.inc({ farm, reason }, 0);
      for (const reason of FARM_QUOTA_REFUSALS) this.farmQuotaRefused.inc({ farm, reason }, 0);
    }
    this.farms = wanted;
  }
  readonly farmThrottled: Counter<'farm' | 'reason'> = new Counter({
    name: 'rasmon_collector_farm_throttled_total',
    help: "Frames of a farm held back because the farm's agents together went over its budget: bytes (limits.bytesPerSecondPerFarm) or apply (limits.applyMillisecondsPerSecondPerFarm)",
    labelNames: ['farm', 'reason'],
    registers: [this.registry],
  });
  readonly farmQuotaRefused: Counter<'farm' | 'reason'> = new Counter({
    name: 'rasmon_collector_farm_quota_refused_total',
    help: "Sessions of a farm refused over the farm's quotas: sessions (its maxSessions) or new_users (its maxNewUsersPerMinute); a snapshot refused whole counts all it listed",
    labelNames: ['farm', 'reason'],
    registers: [this.registry],
  });
  /** The configured farms' quotas now (seats adopted from RAS move them), read at each scrape. */
  quotaSource: () => readonly FarmQuotaValues[] = () => [];
  // Registered for their collect(), which reads quotaSource at each scrape; never set by hand.
  private readonly farmMaxSessions: Gauge<'farm'> = this.quotaGauge(
    'rasmon_collector_farm_max_sessions',
    "The farm's maxSessions: the most sessions its hosts may hold together",
    (quota) => quota.maxSessions,
  );
  private readonly farmMaxNewUsers: Gauge<'farm'> = this.quotaGauge(
    'rasmon_collector_farm_max_new_users_per_minute',
    "The farm's maxNewUsersPerMinute: the most users new to it in a rolling minute",
    (quota) => quota.maxNewUsersPerMinute,
  );

  private quotaGauge(name: string, help: string, value: (quota: FarmQuotaValues) => number): Gauge<'farm'> {
    const source = () => this.quotaSource();
    return new Gauge({
      name,
      help,
      labelNames: ['farm'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const quota of source()) this.set({ farm: quota.farm }, value(quota));
      },
    });
  }
  private farms = new Set<string>();

  // The RAS broker connector: observed only by the collector that polls a broker.
  readonly brokerPollDuration: Histogram<'farm'> = new Histogram({
    name: 'rasmon_collector_broker_poll_duration_seconds',
    help: "Duration of one poll of a farm's RAS broker (logon if needed, license, sessions, applying them)",
    labelNames: ['farm'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30],
    registers: [this.registry],
  });
  readonly brokerErrors: Counter<'farm' | 'reason'> = new Counter({
    name: 'rasmon_collector_broker_errors_total',
    help: "Failed polls of a farm's RAS broker, by reason: unreachable, tls, auth, timeout, bad_response",
    labelNames: ['farm', 'reason'],
    registers: [this.registry],
  });

  /** The farms with a broker: each reason starts at 0; farms no longer configured lose their series. */
  setBrokerFarms(farms: readonly string[]): void {
    const wanted = new Set(farms);
    for (const farm of this.brokerFarms) {
      if (wanted.has(farm)) continue;
      for (const reason of BROKER_FAILURE_REASONS) this.brokerErrors.remove({ farm, reason });
      this.brokerPollDuration.remove({ farm });
    }
    for (const farm of wanted) {
      if (!this.brokerFarms.has(farm))
        for (const reason of BROKER_FAILURE_REASONS) this.brokerErrors.inc({ farm, reason }, 0);
    }
    this.brokerFarms = wanted;
  }
  private brokerFarms = new Set<string>();

  constructor(version: string) {
    collectDefaultMetrics({ register: this.registry });
    for (const name of MISLABELLED_DEFAULTS) this.registry.removeSingleMetric(name);
    this.throttleConnectionWalks();
    this.buildInfo.set({ version }, 1);
    // Known label values start at 0, so a healthy collector shows 0 rather than no series.
    for (const type of ['hello', 'snapshot', 'events', 'status']) {
      for (const result of ['applied', 'duplicate', 'refused']) this.frames.inc({ type, result }, 0);
    }
    for (const type of ['invalid', 'binary', 'oversized']) this.frames.inc({ type, result: 'refused' }, 0);
    for (const result of ['applied', 'duplicate', 'rejected']) this.events.inc({ result }, 0);
    for (const reason of UPGRADE_REJECTIONS) this.upgradesRejected.inc({ reason }, 0);
    for (const reason of AGENT_DROPS) this.agentsDropped.inc({ reason }, 0);
    for (const reason of PROXY_HEADER_REFUSALS) this.proxyHeaderRefused.inc({ reason }, 0);
    for (const reason of AGENT_REFUSALS) this.agentsRefused.inc({ reason }, 0);
    this.setRedisRefusingWrites(undefined);
  }

  private gauge(name: string, help: string, labelNames: string[]): Gauge {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  readonly redisMemoryUsedRatio = this.gauge(
    'rasmon_collector_redis_memory_used_ratio',
    "Redis's used_memory over its maxmemory (absent while Redis sets no maxmemory)",
    [],
  );

  /** The last write of a frame Redis refused, and when (ms). */
  private frameRefusal: { reason: RedisWriteRefusal; at: number } | undefined;

  /**
   * The one reason Redis refuses writes for now (1), every other 0; undefined: it takes them, or does
   * not answer. A frame refused within the last {@link FRAME_REFUSAL_HOLD_MS} counts too: the small
   * probe write may still fit while agents' frames no longer do (Redis at maxmemory).
   */
  setRedisRefusingWrites(refusal: RedisWriteRefusal | undefined): RedisWriteRefusal | undefined {
    const recent =
      this.frameRefusal && Date.now() - this.frameRefusal.at < FRAME_REFUSAL_HOLD_MS
        ? this.frameRefusal.reason
        : undefined;
    const effective = refusal ?? recent;
    for (const reason of REDIS_WRITE_REFUSALS) this.redisRefusingWrites.set({ reason }, reason === effective ? 1 : 0);
    return effective;
  }

  /** Redis refused to apply a frame with this error: shown at once and held for a while. */
  noteFrameRefusal(reason: RedisWriteRefusal): void {
    this.frameRefusal = { reason, at: Date.now() };
    this.redisRefusingWrites.set({ reason }, 1);
  }

  setConfigHash(hash: string): void {
    this.configInfo.reset();
    this.configInfo.set({ hash }, 1);
  }

  /**
   * prom-client's default metrics that walk one entry per agent connection on every scrape:
   * process_open_fds lists /proc/self/fd, nodejs_active_handles and nodejs_active_resources list
   * every socket, holding the event loop meanwhile (at 10,000 connections, about half of a scrape). Each is counted
   * at most every 10 s here and shows its last count in between.
   */
  private throttleConnectionWalks(): void {
    for (const name of CONNECTION_WALKS) {
      const metric = this.registry.getSingleMetric(name) as { collect?: (this: unknown) => unknown } | undefined;
      const collect = metric?.collect;
      if (!metric || !collect) continue;
      let countedAt = -Infinity;
      metric.collect = function (this: unknown) {
        const now = performance.now();
        if (now - countedAt < CONNECTION_WALK_MAX_AGE_MS) return;
        countedAt = now;
        return collect.call(this);
      };
    }
  }
}
