/**
 * Token buckets: one per agent connection (frames and bytes per second, so one farm's hosts
 * cannot starve another's) and one per remote address for upgrades (so a peer cannot make the
 * collector hash thousands of bad tokens a second).
 */

/** A bucket of `capacity` tokens refilled at `ratePerSecond`. */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly capacity: number,
    now = Date.now(),
  ) {
    this.tokens = capacity;
    this.updatedAt = now;
  }

  /** Takes `count` tokens if there are that many. */
  tryTake(count = 1, now = Date.now()): boolean {
    this.refill(now);
    if (this.tokens < count) return false;
    this.tokens -= count;
    return true;
  }

  /**
   * Takes `count` tokens, going into debt if needed; returns how long to wait (ms) until the
   * debt is paid. A cost above the capacity is allowed, it just waits longer.
   */
  take(count: number, now = Date.now()): number {
    this.refill(now);
    this.tokens -= count;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.ratePerSecond) * 1000);
  }

  /** Full again: nothing to remember about this key. */
  full(now = Date.now()): boolean {
    this.refill(now);
    return this.tokens >= this.capacity;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.updatedAt) / 1000) * this.ratePerSecond);
    this.updatedAt = now;
  }
}

/** A refused peer is never told to wait longer than this. */
export const MAX_RETRY_AFTER_SECONDS = 300;

/** Per-key buckets, with a bounded number of keys: the oldest are forgotten first. */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  /** Per key, when the attempts refused so far would all have had their turn, ms. */
  private readonly backlog = new Map<string, number>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly maxKeys = 10_000,
  ) {}

  /** One attempt from `key`: false when it is over its rate. */
  allow(key: string, now = Date.now()): boolean {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.maxKeys) this.prune(now);
      bucket = new TokenBucket(this.ratePerSecond, this.burst, now);
      this.buckets.set(key, bucket);
    }
    return bucket.tryTake(1, now);
  }

  /**
   * After `allow` said no: the seconds the refused peer should wait (its `Retry-After`). Each
   * refusal takes the next turn at the key's rate, so thousands of agents refused behind one
   * address are told to come back spread over the time the rate needs for them all, instead of
   * all retrying into the limit every second; at least 1 s, at most MAX_RETRY_AFTER_SECONDS.
   */
  retryAfterSeconds(key: string, now = Date.now()): number {
    const until = Math.max(this.backlog.get(key) ?? now, now) + 1000 / this.ratePerSecond;
    const capped = Math.min(until, now + MAX_RETRY_AFTER_SECONDS * 1000);
    this.backlog.delete(key);
    this.backlog.set(key, capped);
    if (this.backlog.size > this.maxKeys) this.backlog.delete(this.backlog.keys().next().value!);
    return Math.max(1, Math.ceil((capped - now) / 1000));
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Drops full buckets (they hold no state); if none is full, the oldest tenth. */
  private prune(now: number): void {
    for (const [key, bucket] of this.buckets) if (bucket.full(now)) this.buckets.delete(key);
    if (this.buckets.size < this.maxKeys) return;
    let drop = Math.ceil(this.maxKeys / 10);
    for (const key of this.buckets.keys()) {
      if (drop-- <= 0) break;
      this.buckets.delete(key);
    }
  }
}
