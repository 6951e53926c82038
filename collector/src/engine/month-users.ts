/**
 * The distinct users of each calendar month (UTC), per farm: the number Microsoft's RDS SAL is
 * reported by, "per distinct user authorized in the calendar month" (docs/design.md §4, "Customers,
 * SPLA and SAL"). Every user a session of an applied frame names (an agent's snapshot or upsert, a
 * broker poll's snapshot) goes into the farm's set of the month, `{farm}:monthusers:YYYY-MM`
 * (redis-schema.ts), which expires `distinctUsers.retentionMonths` after its month ends.
 *
 * Written from TypeScript after the frame's script, not inside it: SADD is idempotent, and a frame
 * whose users were not recorded (the collector died in between) is resent, or its users come again
 * in the host's next snapshot, so the set misses no one for longer than a snapshot interval. The
 * month is the Redis clock's (docs/design.md §2 rule 11): away from a month's turn the collector's own clock names
 * the same month, so Redis's TIME is asked only within {@link NEAR_TURN_MS} of one.
 */
import type { Cluster, Redis } from 'ioredis';
import type { RedisKeys } from './redis-schema.js';

/** Within this long of a month's turn, the month is read from Redis's clock rather than the collector's. */
export const NEAR_TURN_MS = 10 * 60_000;

/**
 * A user this collector wrote into a month's set is not written again for this long: an agent's
 * snapshot repeats its users every 10 minutes, and the writes would repeat with it. When Redis lost
 * a farm's data (its epoch changed), the collector forgets what it wrote for the farm, so the
 * snapshots that rebuild the farm put its users back in the month's set at once.
 */
export const REWRITE_AFTER_MS = 10 * 60_000;

/** Most (farm, month, user) entries remembered as written; past it the memory starts over. */
const MAX_REMEMBERED = 200_000;

/** `YYYY-MM` of a time (UTC). */
export function monthText(ms: number): string {
  return new Date(ms).toISOString().slice(0, 7);
}

/** 00:00 UTC of the first of the month `add` months after the month of `ms`. */
export function monthStartMs(ms: number, add = 0): number {
  const date = new Date(ms);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + add, 1);
}

/** The months (`YYYY-MM`) a period of UTC days touches, oldest first. */
export function monthsOf(fromMs: number, toMs: number): string[] {
  const months: string[] = [];
  for (let start = monthStartMs(fromMs); start <= toMs; start = monthStartMs(start, 1)) months.push(monthText(start));
  return months;
}

/** The most months `distinctUsers.retentionMonths` allows (config.ts): how far back the sweep looks. */
export const MAX_RETENTION_MONTHS = 240;

/** Whether the users of `month` are kept at `now` under `retentionMonths` (kept through the month that many after it). */
export function monthKept(month: string, retentionMonths: number, now: number): boolean {
  return monthStartMs(Date.parse(`${month}-01T00:00:00Z`), retentionMonths + 1) > now;
}

/** What one farm's retention sweep did. */
export interface SweepResult {
  /** Month sets deleted: older than the retention now. */
  deleted: number;
  /** Month sets kept, their expiry set from the retention now. */
  kept: number;
}

async function redisNow(redis: Redis | Cluster): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/** Records the users of applied frames in their farm's set of the month. */
export class MonthUsers {
  /**
   * Per farm and month set, user → when this collector last wrote the user into that set. Keyed by
   * the user's own string: a 2,000-session snapshot looks up 2,000 users without building a string
   * for each.
   */
  private readonly written = new Map<string, Map<string, Map<string, number>>>();
  /** Entries in `written`, all farms together. */
  private remembered = 0;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keys: RedisKeys,
    /** `distinctUsers.retentionMonths` of the configuration loaded now. */
    private readonly retentionMonths: () => number,
    private readonly localNow: () => number = Date.now,
  ) {}

  /** The time whose month the users belong to: the collector's clock, or Redis's near a month's turn. */
  private async now(): Promise<number> {
    const local = this.localNow();
    const nearTurn = local - monthStartMs(local) < NEAR_TURN_MS || monthStartMs(local, 1) - local < NEAR_TURN_MS;
    return nearTurn ? redisNow(this.redis) : local;
  }

  /** The retention each farm was last swept with. */
  private readonly swept = new Map<string, number>();

  /**
   * Applies the retention now to the farm's month sets already written: the sets of the months
   * `MAX_RETENTION_MONTHS` back that are older than it are deleted, the others get the expiry it
   * gives (a lowered retention shortens them, a raised one lengthens them). One pipeline of at
   * most 242 commands on the farm's slot, whatever the sets hold. Also sets the farm's first
   * recorded month, when it has none, to the oldest set kept (sets written before the marker), or
   * to this month: from now on its users are recorded, so a month of day records and no user is 0.
   */
  async sweep(farm: string, now?: number): Promise<SweepResult> {
    const at = now ?? (await this.now());
    const retention = this.retentionMonths();
    const months = Array.from({ length: MAX_RETENTION_MONTHS + 1 }, (_, back) => monthText(monthStartMs(at, -back)));
    const pipeline = this.redis.pipeline();
    for (const [back, month] of months.entries()) {
      const key = this.keys.monthUsers(farm, month);
      if (back <= retention) pipeline.pexpireat(key, monthStartMs(at, retention + 1 - back));
      else pipeline.unlink(key);
    }
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([err]) => err);
    if (failed) throw failed[0]!;
    let deleted = 0;
    let kept = 0;
    let oldest: string | undefined;
    results.forEach(([, reply], back) => {
      if (reply !== 1) return;
      if (back <= retention) {
        oldest = months[back];
        kept += 1;
      } else {
        deleted += 1;
      }
    });
    await this.redis.set(this.keys.monthUsersSince(farm), oldest ?? monthText(at), 'NX');
    this.swept.set(farm, retention);
    return { deleted, kept };
  }

  /** Adds the (normalized) users to the farm's set of the month of now; `at` fixes the time instead. */
  async record(farm: string, users: Iterable<string>, at?: number): Promise<void> {
    const distinct = [...new Set(users)];
    if (distinct.length === 0) return;
    const now = at ?? (await this.now());
    // Once per farm and retention: before the first write, so sets older than the marker count.
    if (this.swept.get(farm) !== this.retentionMonths()) await this.sweep(farm, now);
    const key = this.keys.monthUsers(farm, monthText(now));
    const local = this.localNow();
    const written = this.written.get(farm)?.get(key);
    const fresh = written
      ? distinct.filter((user) => local - (written.get(user) ?? -Infinity) >= REWRITE_AFTER_MS)
      : distinct;
    if (fresh.length === 0) return;
    // Kept through the last day of the month `retentionMonths` after this one.
    const expireAt = monthStartMs(now, this.retentionMonths() + 1);
    const results = await this.redis
      .multi()
      .sadd(key, ...fresh)
      .pexpireat(key, expireAt)
      .set(this.keys.monthUsersSince(farm), monthText(now), 'NX')
      .exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0]!;
    if (this.remembered + fresh.length > MAX_REMEMBERED) {
      this.written.clear();
      this.remembered = 0;
    }
    let months = this.written.get(farm);
    if (!months) this.written.set(farm, (months = new Map<string, Map<string, number>>()));
    let mine = months.get(key);
    if (!mine) months.set(key, (mine = new Map<string, number>()));
    for (const user of fresh) {
      if (!mine.has(user)) this.remembered += 1;
      mine.set(user, local);
    }
  }

  /**
   * Redis lost the farm's data (its epoch changed): what this collector wrote into its month sets
   * is gone, and the users of the snapshots that rebuild it are written again at once.
   */
  forget(farm: string): void {
    for (const users of this.written.get(farm)?.values() ?? []) this.remembered -= users.size;
    this.written.delete(farm);
  }
}

/** The first month whose distinct users the farm recorded; undefined: none yet (or Redis lost it). */
export async function readMonthUsersSince(
  redis: Redis | Cluster,
  keys: RedisKeys,
  farm: string,
): Promise<string | undefined> {
  return (await redis.get(keys.monthUsersSince(farm))) ?? undefined;
}

/** The users of a farm's month, sorted (SSCAN, so a large set does not hold Redis up). */
export async function readMonthUsers(
  redis: Redis | Cluster,
  keys: RedisKeys,
  farm: string,
  month: string,
): Promise<string[]> {
  const key = keys.monthUsers(farm, month);
  const users = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await redis.sscan(key, cursor, 'COUNT', 1000);
    for (const user of batch) users.add(user);
    cursor = next;
  } while (cursor !== '0');
  return [...users].sort();
}
