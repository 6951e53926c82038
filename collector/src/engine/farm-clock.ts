/**
 * Time-driven rules (docs/design.md §2 rule 11): every second, for every farm, the farm's tick and the hosts it
 * names as due (lapsed leases, retirements). Also the watch on each farm's epoch, by which a
 * collector notices Redis coming back empty: whichever read finds an epoch changed (a round, or a
 * check a connection asked for when Redis refused its epoch) tells its owner (onEpochChange: the
 * agent server marks the farm rebuilding and resyncs the farm's agents). That is the one direction
 * the news travels; the clock knows nothing of connections.
 */
import { DAY_MS } from '@rasmon/protocol';
import type { FarmDirectory } from '../config/farm-directory.js';
import type { LicenseEngine } from './license-engine.js';
import { eachLimited, type Logger } from '@rasmon/protocol/kit';

/** Farms ticked at once in a round. */
const ROUND_CONCURRENCY = 16;

/** The farms' epochs as the agents' connections use them. */
export interface FarmEpochs {
  /** The farm's epoch as the clock's last round knew it; asks Redis (creating one) the first time. */
  epoch(farm: string): Promise<string>;
  /** Reads the farm's epoch from Redis now, for a caller that Redis told its epoch is not the farm's. */
  check(farm: string): Promise<string>;
}

export interface FarmClockOptions {
  engine: LicenseEngine;
  log: Logger;
  farms: () => FarmDirectory;
  hostRetireSeconds: number;
  /** Called after each round with whether Redis answered it. */
  onRound?: (ok: boolean) => void;
  /**
   * A read found a farm's epoch not the one it knew: the farm's data was lost or recreated. The
   * read returns once the promise settles: the hosts to resend are marked before any of them is
   * asked to (the owner asks them afterwards, at its own pace; the round goes on to the next farm).
   */
  onEpochChange?: (farm: string, epoch: string) => Promise<void>;
  intervalMs?: number;
}

export class FarmClock implements FarmEpochs {
  /** Each farm's epoch as the last round read it. */
  private readonly epochs = new Map<string, string>();
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

  /** The farm's epoch as the last round knew it; asks Redis (creating one) the first time. */
  async epoch(farm: string): Promise<string> {
    return this.epochs.get(farm) ?? this.check(farm);
  }

  /**
   * Reads the farm's epoch now, through its tick; a changed epoch is told to the owner before the
   * check returns (a connection that found its epoch refused must not resend its state into a farm
   * not yet marked rebuilding: its mark would come after its snapshot and hold the farm withheld).
   * Concurrent callers share one check.
   */
  check(farm: string): Promise<string> {
    let pending = this.checks.get(farm);
    if (!pending) {
      pending = this.tickFarm(farm)
        .then(async (epoch) => {
          await this.watchEpoch(farm, epoch);
          return epoch;
        })
        .finally(() => this.checks.delete(farm));
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
    const engine = this.options.engine.farm(id);
    if (!engine) throw new Error(`farm ${id} is not configured`);
    const farm = engine.config;
    const retireMs = this.options.hostRetireSeconds * 1000;
    const forgetMs = farm.forgetHostsAfterDays * DAY_MS;
    const { epoch, hostsDue, hostsToForget } = await engine.tick(retireMs, forgetMs, this.epochs.get(id));
    for (const host of hostsDue) {
      const { lapsed, retired } = await engine.maintainHost(host, retireMs);
      if (lapsed) this.options.log.info({ farm: id, host }, 'host lease lapsed: host is stale');
      if (retired) this.options.log.info({ farm: id, host }, 'host retired: its connections stop counting');
    }
    for (const host of hostsToForget) {
      const result = await engine.forgetHost(host, forgetMs);
      if (result.kind === 'forgotten') {
        this.options.log.info(
          { farm: id, host, days: farm.forgetHostsAfterDays },
          'retired host forgotten: its keys and series are gone',
        );
      }
    }
    return epoch;
  }

  /** Keeps the epoch a read found, and tells the owner when it is not the one known before. */
  private async watchEpoch(id: string, epoch: string): Promise<void> {
    const known = this.epochs.get(id);
    this.epochs.set(id, epoch);
    if (known === undefined || known === epoch || !this.options.onEpochChange) return;
    this.options.log.warn({ farm: id }, 'farm data lost or recreated in Redis: asking its agents for snapshots');
    await this.options.onEpochChange(id, epoch);
  }

  private async runRound(): Promise<void> {
    let ok = true;
    // A few farms at a time: after Redis came back empty, every farm's loss is found (and its hosts
    // marked) within a few round trips, not one farm after another.
    await eachLimited(this.options.farms().list(), ROUND_CONCURRENCY, async (farm) => {
      try {
        await this.check(farm.id);
      } catch (err) {
        ok = false;
        if (!this.failing) this.options.log.warn({ err, farm: farm.id }, 'farm tick failed');
      }
    });
    this.failing = !ok;
    this.options.onRound?.(ok);
  }
}
