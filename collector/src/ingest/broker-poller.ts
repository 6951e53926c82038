/**
 * The RAS broker connector at work (docs/design.md §4, "Broker connector"): for every farm with a
 * `ras` block, one collector at a time (a lease in Redis) polls the broker every `ras.pollSeconds`,
 * writes what RAS says of its license to the farm's broker hash, and applies the sessions of the
 * imported sources as the snapshots of their pseudo-hosts (`broker/vdi`, ...) through the same
 * license engine as an agent's. Every collector reads the hash back every two seconds and lays the
 * adopted license values (`ras.adopt`) over the farm's configuration, so every collector counts,
 * exports and reports the same.
 *
 * A broker that stops answering leaves its pseudo-hosts to their lease: their sessions are kept,
 * held unverified once the lease lapses, and dropped only when the host retires (docs/design.md §2
 * rule 10), as a
 * silent agent's are. A poll runs on the event loop like any request: awaiting the broker holds no
 * agent's frame back.
 */
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from '@rasmon/protocol/kit';
import { serializeError } from '@rasmon/protocol/kit';
import { readFileSync } from 'node:fs';
import { adoptedLicense, disagreements } from '../broker/adopted-license.js';
import { BrokerError, type BrokerFailureReason } from '../broker/broker-error.js';
import { brokerHost, IMPORTED_SOURCES, importSessions, type ImportedSource } from '../broker/broker-sessions.js';
import type { RasLicense } from '../broker/license-reader.js';
import { RasClient } from '../broker/ras-client.js';
import type { SessionList } from '../broker/session-reader.js';
import { mixedLicenseKeys, type FarmConfig } from '../config/config.js';
import type { FarmDirectory } from '../config/farm-directory.js';
import type { LicenseEngine } from '../engine/license-engine.js';
import type { BrokerField, MetaField, RedisKeys, StoredBroker, StoredBrokerSessions } from '../engine/redis-schema.js';
import type { CollectorMetrics } from '../metrics/metrics.js';

type RasConfig = NonNullable<FarmConfig['ras']>;

/** The stream every broker pseudo-host's snapshots belong to. */
export const BROKER_STREAM = 'ras-broker';

/** How soon a poll is tried again when Redis did not answer (the lease could not be asked for). */
const REDIS_RETRY_MS = 5000;

/** How often every collector reads the adopted license back from Redis. */
const ADOPT_SYNC_MS = 2000;

/**
 * A broker pseudo-host's lease: two polls and the time a slow poll may take. Past it the host is
 * stale and its users unverified.
 */
export function brokerHostLeaseMs(pollSeconds: number): number {
  return (2 * pollSeconds + 30) * 1000;
}

/** The poller's lease on the broker: another collector takes over within it when this one stops. */
function pollLeaseMs(pollSeconds: number): number {
  return (2 * pollSeconds + 15) * 1000;
}

/** Takes or renews the lease when it is free or already this collector's; 1 when it holds it. */
const TAKE_LEASE = `
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

/** Gives the lease up if this collector holds it. */
const DROP_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface BrokerPollersOptions {
  redis: Redis | Cluster;
  keys: RedisKeys;
  engine: LicenseEngine;
  farms: () => FarmDirectory;
  epochs: { epoch(farm: string): Promise<string>; check(farm: string): Promise<string> };
  metrics: CollectorMetrics;
  log: Logger;
  collectorId: string;
}

/** The pollers of every farm with a broker, and the adopted license kept in step on this collector. */
export class BrokerPollers {
  private readonly pollers = new Map<string, FarmBrokerPoller>();
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  /** Per farm, the disagreements between the configuration and RAS last logged. */
  private readonly logged = new Map<string, string>();
  private stopped = false;

  constructor(private readonly options: BrokerPollersOptions) {}

  start(): void {
    this.farmsChanged();
    this.syncTimer = setInterval(() => void this.syncAdopted(), ADOPT_SYNC_MS);
    this.syncTimer.unref();
  }

  /** After a reload: pollers for new or changed `ras` blocks, none for farms that lost theirs. */
  farmsChanged(): void {
    if (this.stopped) return;
    const farms = this.options.farms();
    const wanted = new Map(farms.list().flatMap((farm) => (farm.ras ? [[farm.id, farm] as const] : [])));
    for (const [id, poller] of this.pollers) {
      const farm = wanted.get(id);
      if (farm && poller.sameSettings(farm.ras!)) continue;
      this.pollers.delete(id);
      void poller.stop();
    }
    for (const [id, farm] of wanted) {
      if (this.pollers.has(id)) continue;
      const poller = new FarmBrokerPoller(id, farm.ras!, this.options, () => void this.syncAdopted());
      this.pollers.set(id, poller);
      poller.start();
    }
    this.options.metrics.setBrokerFarms([...wanted.keys()]);
    void this.syncAdopted();
  }

  /**
   * Polls the farm's broker now, after any poll in flight, instead of waiting for the next period;
   * resolves when that poll is done (whether RAS answered or not). False for a farm without a broker.
   */
  async pollNow(farm: string): Promise<boolean> {
    const poller = [...this.pollers.entries()].find(([id]) => id.toLowerCase() === farm.toLowerCase())?.[1];
    if (!poller) return false;
    await poller.pollNow();
    return true;
  }

  /** Redis is ready: a poller that could not ask for its lease tries again now, not 5 s later. */
  redisReady(): void {
    for (const poller of this.pollers.values()) poller.redisReady();
  }

  /** Stops polling: each poller finishes its poll, logs off and gives its lease up. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    await Promise.all([...this.pollers.values()].map((poller) => poller.stop()));
    this.pollers.clear();
    await this.syncing;
  }

  /** Reads what RAS last said of each adopting farm's license and lays it over the farm. */
  syncAdopted(): Promise<void> {
    this.syncing ??= this.readAdopted().finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  private async readAdopted(): Promise<void> {
    const farms = this.options.farms();
    for (const farm of farms.list()) {
      if (farm.ras?.adopt !== true) continue;
      let json: string | null;
      try {
        json = await this.options.redis.hget(this.options.keys.broker(farm.id).state, 'license' satisfies BrokerField);
      } catch {
        return; // Redis is down: the farm keeps what it had; /readyz and redis_up say so.
      }
      if (json === null) continue;
      let license: RasLicense;
      try {
        license = JSON.parse(json) as RasLicense;
      } catch {
        continue;
      }
      const configured = farms.configured(farm.id);
      if (!configured) continue;
      const adopted = adoptedLicense(license, configured);
      if (farms.adopt(farm.id, adopted)) {
        this.options.log.info({ farm: farm.id, adopted: showAdopted(adopted) }, 'license values adopted from RAS');
        // The load refused keys of both kinds; a type RAS gives can still mix one (docs/design.md §4).
        for (const mixed of mixedLicenseKeys(farms.list())) {
          if (!mixed.spla.includes(farm.id) && !mixed.other.includes(farm.id)) continue;
          this.options.log.warn(
            { licenseKey: mixed.key, splaFarms: mixed.spla, otherFarms: mixed.other },
            "a licenseKey is shared by SPLA farms and farms that are not, by the license type RAS gives: the key's billed users sum its SPLA farms only; give each license its own licenseKey",
          );
        }
      }
      const differ = disagreements(configured, adopted);
      const text = JSON.stringify(differ);
      if ((this.logged.get(farm.id) ?? '[]') !== text) {
        this.logged.set(farm.id, text);
        if (differ.length > 0) {
          this.options.log.warn(
            { farm: farm.id, disagreements: differ },
            'the configuration and RAS disagree on the license: RAS is followed (ras.adopt); update the configuration',
          );
        }
      }
    }
  }
}

function showAdopted(adopted: ReturnType<typeof adoptedLicense>): Record<string, unknown> {
  return {
    ...adopted,
    ...(adopted.expires === undefined ? {} : { expires: new Date(adopted.expires).toISOString() }),
  };
}

/** One farm's broker: its client, its timer, its lease. */
class FarmBrokerPoller {
  private readonly client: RasClient;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private stopped = false;
  /** The failure last logged at warn level, so a broker down for hours logs once, not every poll. */
  private lastFailure: string | undefined;
  private holding = false;
  /** The last poll could not reach Redis: the next one is due as soon as Redis is ready. */
  private waitingForRedis = false;
  private readonly log: Logger;

  constructor(
    private readonly farm: string,
    private readonly ras: RasConfig,
    private readonly options: BrokerPollersOptions,
    /** Called after a poll RAS answered: the adopted values follow at once on this collector. */
    private readonly onApplied: () => void,
  ) {
    this.log = options.log.child({ farm });
    this.client = new RasClient({
      url: ras.url,
      username: ras.username,
      password: ras.password!,
      ...(ras.ca === undefined ? {} : { ca: readFileSync(ras.ca) }),
      timeoutMs: ras.timeoutSeconds * 1000,
      log: this.log,
    });
  }

  /** Whether a reload left this broker's settings as they were (the password file read again included). */
  sameSettings(ras: RasConfig): boolean {
    const plain = (value: RasConfig) => JSON.stringify({ ...value, password: undefined });
    return plain(ras) === plain(this.ras) && ras.password?.reveal() === this.ras.password?.reveal();
  }

  start(): void {
    // The first poll soon after start, not a whole period later.
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runPoll(), delayMs);
    this.timer.unref();
  }

  /** One poll at a time; the next is due a period after this one ends. */
  private runPoll(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.polling ??= this.poll().then((redisAnswered) => {
      this.polling = undefined;
      this.waitingForRedis = !redisAnswered;
      if (!this.stopped) this.schedule(redisAnswered ? this.ras.pollSeconds * 1000 : REDIS_RETRY_MS);
    });
    return this.polling;
  }

  async pollNow(): Promise<void> {
    await this.polling;
    await this.runPoll();
  }

  redisReady(): void {
    if (this.waitingForRedis && !this.polling && !this.stopped) this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
    await this.client
      .logoff()
      .catch((err: unknown) => this.log.debug({ err: serializeError(err) }, 'broker logoff failed'));
    if (this.holding) {
      await this.options.redis
        .eval(DROP_LEASE, 1, this.options.keys.broker(this.farm).lease, this.options.collectorId)
        .catch(() => undefined);
    }
  }

  private async takeLease(): Promise<boolean> {
    const key = this.options.keys.broker(this.farm).lease;
    const took = await this.options.redis.eval(
      TAKE_LEASE,
      1,
      key,
      this.options.collectorId,
      pollLeaseMs(this.ras.pollSeconds),
    );
    const holding = took === 1;
    if (holding !== this.holding) {
      this.log.info(holding ? 'polling the RAS broker' : 'another collector polls the RAS broker');
      // A poller that lost the lease logs off: only the one that polls holds a broker session.
      if (!holding) await this.client.logoff().catch(() => undefined);
    }
    this.holding = holding;
    return holding;
  }

  /** One poll, if this collector holds the lease; false when Redis did not answer (try again soon). */
  private async poll(): Promise<boolean> {
    try {
      if (!(await this.takeLease())) return true;
    } catch (err) {
      this.log.debug({ err: serializeError(err) }, 'broker lease not taken: redis did not answer');
      return false;
    }
    const started = performance.now();
    try {
      const license = await this.client.readLicense();
      const sessions = await this.client.readSessions();
      const avd = this.ras.sessions.includes('avd') ? await this.client.readSessions('AVD') : undefined;
      if (this.stopped) return true;
      await this.applied(license, sessions, avd);
      return true;
    } catch (err) {
      if (err instanceof BrokerError) {
        await this.failed(err.reason, err.message);
        return true;
      }
      this.log.warn({ err: serializeError(err) }, 'broker poll not applied: redis did not answer');
      return false;
    } finally {
      this.options.metrics.brokerPollDuration.observe({ farm: this.farm }, (performance.now() - started) / 1000);
    }
  }

  /** The poll answered: its sessions applied, then what RAS said written for every collector to read. */
  private async applied(license: RasLicense, list: SessionList, avd: SessionList | undefined): Promise<void> {
    const state = this.options.keys.broker(this.farm).state;
    const now = Date.now();
    const imported = importSessions(list.sessions, this.ras.sessions, this.ras.upnDomains, now, avd?.sessions ?? []);
    const previous = (await this.options.redis.hget(state, 'sessions' satisfies BrokerField)) ?? '{}';
    const before = new Set(Object.keys((JSON.parse(previous) as Partial<StoredBrokerSessions>).imported ?? {}));
    const counts: Record<string, number> = {};
    for (const source of IMPORTED_SOURCES) {
      const wanted = this.ras.sessions.includes(source);
      // A source no longer imported is emptied once, so its users stop counting at once.
      if (!wanted && !before.has(source)) continue;
      if (!(await this.applySource(source, wanted ? imported.bySource[source] : []))) return;
      if (wanted) counts[source] = imported.bySource[source].length;
    }
    const rejected = list.rejected.length + (avd?.rejected.length ?? 0);
    const sessions: StoredBrokerSessions = {
      imported: counts,
      skipped: imported.skipped,
      rejected,
      unmappedUpns: imported.unmappedUpns,
    };
    const fields: StoredBroker = {
      pollAt: String(now),
      okAt: String(now),
      up: '1',
      license: JSON.stringify(license),
      sessions: JSON.stringify(sessions),
      poller: this.options.collectorId,
    };
    await this.options.redis
      .multi()
      .hset(state, fields)
      .hdel(state, 'reason' satisfies BrokerField, 'message' satisfies BrokerField)
      .hincrby(this.options.keys.farm(this.farm).meta, 'version' satisfies MetaField, 1)
      .exec();
    if (this.lastFailure !== undefined) this.log.info('the RAS broker answers again');
    this.lastFailure = undefined;
    const surprising = list.rejected[0] ?? avd?.rejected[0];
    if (surprising) {
      this.log.warn(
        { rejected, field: surprising.field, problem: surprising.problem },
        'RAS listed sessions with a field of another shape than documented: they were set aside',
      );
    }
    if (imported.unmappedUpns > 0) {
      this.log.warn(
        { users: imported.unmappedUpns },
        "RAS lists users by UPN with a suffix ras.upnDomains does not map: they cannot match the agents' DOMAIN\\user names",
      );
    }
    this.onApplied();
  }

  /** Applies one source's sessions as its pseudo-host's snapshot; false when the poll must stop. */
  private async applySource(
    source: ImportedSource,
    sessions: ReturnType<typeof importSessions>['bySource'][ImportedSource],
  ): Promise<boolean> {
    const farm = this.options.engine.farm(this.farm);
    if (!farm) return false;
    const leaseMs = brokerHostLeaseMs(this.ras.pollSeconds);
    for (let attempt = 0; attempt < 2; attempt++) {
      const epoch =
        attempt === 0 ? await this.options.epochs.epoch(this.farm) : await this.options.epochs.check(this.farm);
      const claim = {
        host: brokerHost(source),
        owner: `broker:${this.options.collectorId}`,
        stream: BROKER_STREAM,
        epoch,
      };
      const hello = await farm.hello(claim, 'ras-broker', leaseMs);
      if (hello.kind === 'epoch') continue;
      if (hello.kind === 'full') {
        this.log.warn(
          { host: claim.host, cap: hello.cap },
          'the farm is at its host cap: the broker source cannot be applied (raise maxHosts or maxKnownHosts)',
        );
        return true;
      }
      const result = await farm.applySnapshot(claim, hello.ack + 1, sessions, leaseMs);
      if (result.kind === 'epoch') continue;
      if (result.kind === 'superseded') return false;
      const quota =
        result.farmQuota.sessions.length > 0
          ? 'sessions'
          : result.farmQuota.newUsers.length > 0
            ? 'new_users'
            : undefined;
      if (quota) {
        // The source keeps what it held; the next poll tries again.
        this.options.metrics.farmQuotaRefused.inc({ farm: this.farm, reason: quota }, sessions.length);
        this.log.warn(
          { host: claim.host, quota, sessions: sessions.length },
          "the broker source's sessions are over the farm's quotas and were not applied (raise maxSessions or maxNewUsersPerMinute)",
        );
      }
      return true;
    }
    return false;
  }

  /** The poll failed: counted, written for every collector, logged once per reason. */
  private async failed(reason: BrokerFailureReason, message: string): Promise<void> {
    this.options.metrics.brokerErrors.inc({ farm: this.farm, reason });
    const key = `${reason}: ${message}`;
    if (this.lastFailure !== key) {
      this.log.warn({ reason }, `the RAS broker poll failed: ${message}`);
      this.lastFailure = key;
    } else {
      this.log.debug({ reason }, 'the RAS broker poll failed again');
    }
    const fields: StoredBroker = {
      pollAt: String(Date.now()),
      up: '0',
      reason,
      message: message.slice(0, 500),
      poller: this.options.collectorId,
    };
    await this.options.redis
      .multi()
      .hset(this.options.keys.broker(this.farm).state, fields)
      .hincrby(this.options.keys.farm(this.farm).meta, 'version' satisfies MetaField, 1)
      .exec()
      .catch(() => undefined);
  }
}
