/**
 * Time-driven rules (docs/design.md §2 rule 11): every second, for every farm, the farm's tick and the hosts it
 * names as due (lapsed leases, retirements). Also the watch on each farm's epoch, by which a
 * collector notices Redis coming back empty: an epoch change is told to whoever listens (the agent
 * server resyncs its agents); the clock knows nothing of connections.
 */
import { DAY_MS } from '@rasmon/protocol';
import type { FarmDirectory } from '../config/farm-directory.js';
import type { LicenseEngine } from './license-engine.js';
import type { Logger } from '@rasmon/protocol/kit';

/**
 * Hears that a farm's epoch is not the one this collector knew: its data was lost or recreated.
 * The check that found the change settles only once every listener has, so whoever waits on a check
 * (a connection whose frame Redis answered with `epoch`) goes on with its host taken again.
 */
export type EpochChangeListener = (farm: string, epoch: string) => Promise<void>;

/** The farms' epochs as the agent server and its connections use them. */
export interface FarmEpochs {
  /** The farm's epoch as known here; asks Redis (creating one) the first time. */
  epoch(farm: string): Promise<string>;
  /** Reads the farm's epoch from Redis now; listeners hear of a change before this settles. */
  check(farm: string): Promise<string>;
  onEpochChange(listener: EpochChangeListener): void;
}

export interface FarmClockOptions {
  engine: LicenseEngine;
  log: Logger;
  farms: () => FarmDirectory;
  hostRetireSeconds: number;
  /** Called after each round with whether Redis answered it. */
  onRound?: (ok: boolean) => void;
  intervalMs?: number;
}

export class FarmClock implements FarmEpochs {
  private readonly epochs = new Map<string, string>();
  private readonly epochListeners: EpochChangeListener[] = [];
  private readonly checks = new Map<string, Promise<string>>();
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private failing = false;

  constructor(private readonly options: FarmClockOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.round) this.round = this.runRound().finally(() => (this.round = undefined));
    }, this.options.intervalMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.round;
  }

  /** The farm's epoch as known here; asks Redis (creating one) the first time. */
  async epoch(farm: string): Promise<string> {
    return this.epochs.get(farm) ?? this.check(farm);
  }

  onEpochChange(listener: EpochChangeListener): void {
    this.epochListeners.push(listener);
  }

  /**
   * Reads the farm's epoch now (through its tick) and tells the listeners if it changed. Concurrent
   * callers share one check.
   */
  check(farm: string): Promise<string> {
    let pending = this.checks.get(farm);
    if (!pending) {
      pending = this.tickFarm(farm).finally(() => this.checks.delete(farm));
      this.checks.set(farm, pending);
    }
    return pending;
  }

  /** Forgets farms no longer configured. */
  retain(farms: FarmDirectory): void {
    const ids = new Set(farms.ids());
    for (const id of this.epochs.keys()) if (!ids.has(id)) this.epochs.delete(id);
  }

  private async tickFarm(id: string): Promise<string> {
    const farms = this.options.farms();
    const farm = farms.get(id);
    const rules = farms.rules(id);
    if (!farm || !rules) throw new Error(`farm ${id} is not configured`);
    const retireMs = this.options.hostRetireSeconds * 1000;
    const forgetMs = farm.forgetHostsAfterDays * DAY_MS;
    const { epoch, hostsDue, hostsToForget } = await this.options.engine.tick(rules, retireMs, forgetMs);
    const known = this.epochs.get(id);
    this.epochs.set(id, epoch);
    if (known !== undefined && known !== epoch) {
      this.options.log.warn({ farm: id }, 'farm data lost or recreated in Redis: asking its agents for snapshots');
      await Promise.all(this.epochListeners.map((listener) => listener(id, epoch)));
    }
    for (const host of hostsDue) {
      const { lapsed, retired } = await this.options.engine.maintainHost(rules, host, retireMs);
      if (lapsed) this.options.log.info({ farm: id, host }, 'host lease lapsed: host is stale');
      if (retired) this.options.log.info({ farm: id, host }, 'host retired: its connections stop counting');
    }
    for (const host of hostsToForget) {
      const result = await this.options.engine.forgetHost(rules, host, forgetMs);
      if (result.kind === 'forgotten') {
        this.options.log.info(
          { farm: id, host, days: farm.forgetHostsAfterDays },
          'retired host forgotten: its keys and series are gone',
        );
      }
    }
    return epoch;
  }

  private async runRound(): Promise<void> {
    let ok = true;
    for (const farm of this.options.farms().list()) {
      try {
        await this.check(farm.id);
      } catch (err) {
        ok = false;
        if (!this.failing) this.options.log.warn({ err, farm: farm.id }, 'farm tick failed');
      }
    }
    this.failing = !ok;
    this.options.onRound?.(ok);
  }
}
