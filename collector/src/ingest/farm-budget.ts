/**
 * What one farm's agents may take of a collector together (docs/design.md §6): bytes read per second,
 * and the Redis time their frames' scripts take per second. The per-connection limits keep one
 * connection from flooding; these keep one farm's many connections (a leaked token, a misbehaving
 * fleet) from taking the Redis time every other farm's frames need. Over its budget, a farm's frames
 * wait (its connections are not read meanwhile); other farms are untouched. Budgets are per
 * collector: with N collectors a farm may take N times as much of the shared Redis.
 */
import { TokenBucket } from './rate-limit.js';

export type FarmThrottle = 'bytes' | 'apply';

interface Budget {
  bytes: TokenBucket;
  /** Milliseconds of script time. */
  apply: TokenBucket;
}

export class FarmBudgets {
  private readonly budgets = new Map<string, Budget>();

  constructor(
    private readonly bytesPerSecond: number,
    private readonly applyMillisecondsPerSecond: number,
  ) {}

  private of(farm: string): Budget {
    let budget = this.budgets.get(farm);
    if (!budget) {
      budget = {
        bytes: new TokenBucket(this.bytesPerSecond, this.bytesPerSecond),
        apply: new TokenBucket(this.applyMillisecondsPerSecond, this.applyMillisecondsPerSecond),
      };
      this.budgets.set(farm, budget);
    }
    return budget;
  }

  /**
   * A frame of `bytes` for the farm: how long it must wait (ms), and why, before it is applied; 0
   * when the farm is within its budgets.
   */
  admit(farm: string, bytes: number): { waitMs: number; reason?: FarmThrottle } {
    const budget = this.of(farm);
    const forBytes = budget.bytes.take(bytes);
    // The script time already spent in debt: nothing new is charged until the frame has run.
    const forApply = budget.apply.take(0);
    if (forBytes === 0 && forApply === 0) return { waitMs: 0 };
    return forApply >= forBytes ? { waitMs: forApply, reason: 'apply' } : { waitMs: forBytes, reason: 'bytes' };
  }

  /** A frame's script took `ms`: charged to its farm. */
  charge(farm: string, ms: number): void {
    this.of(farm).apply.take(ms);
  }

  /** Forgets farms no longer configured. */
  retain(farms: readonly string[]): void {
    const keep = new Set(farms);
    for (const farm of this.budgets.keys()) if (!keep.has(farm)) this.budgets.delete(farm);
  }
}
