/**
 * What one farm's agents may take of a collector together (docs/design.md §6): bytes read per second,
 * and the Redis time their frames' scripts take per second. The per-connection limits keep one
 * connection from flooding; these keep one farm's many connections (a leaked token, a misbehaving
 * fleet) from taking the Redis time every other farm's frames need. Over its budget, a farm's frames
 * wait (its connections are not read meanwhile); other farms are untouched. Budgets are per
 * collector: with N collectors a farm may take N times as much of the shared Redis.
 *
 * Script time is known only once a script ran, but a farm's connections send frames together: a
 * budget charged afterwards would let all of them into Redis's queue at once (eight hosts, eight
 * 2,000-session scripts in a row before another farm's frame). So each frame reserves the script
 * time it is expected to take when it is admitted (its bytes at the farm's cost per byte so far), and
 * is settled against what its script really took once it ran: the farm's big frames enter Redis at
 * its budget's pace, and what it is charged in the end is what it used.
 */
import { TokenBucket } from './rate-limit.js';

export type FarmThrottle = 'bytes' | 'apply';

/**
 * Script time expected per byte of a frame before a farm has shown its own (ms): a 2,000-session
 * snapshot (about 220 KB) took about 86 ms of script on a 2-core machine (docs/performance.md, "One
 * farm flooding"). Overestimating costs nothing lasting: the difference is given back at settling.
 */
export const DEFAULT_APPLY_MS_PER_BYTE = 0.0004;

/**
 * The script time a farm may take at once, in seconds of its budget: a tenth, so that a farm whose
 * hosts all send big snapshots together has about one of them in Redis's queue at a time (each
 * enters when the one before is paid for) rather than a second's worth in a row ahead of another
 * farm's frame. Small frames are unaffected: a tenth of the default budget is 25 ms, a hundred
 * ordinary event frames.
 */
const APPLY_BURST_SECONDS = 0.1;

/**
 * Frames from this size on reserve their script time and teach the farm its cost per byte (a
 * snapshot of about 120 sessions). Smaller ones are charged once they ran, as they come: their
 * script time is mostly fixed cost, a byte rate would misjudge it, and thousands of hosts' small
 * snapshots after a Redis loss are not held back by estimates.
 */
const RESERVE_FROM_BYTES = 16_384;

/** Weight of the latest frame in a farm's cost per byte. */
const LEARN_WEIGHT = 0.25;

interface Budget {
  bytes: TokenBucket;
  /** Milliseconds of script time. */
  apply: TokenBucket;
  /** The farm's script time per byte of frame, learnt from its frames large enough to tell. */
  msPerByte: number;
  /** Settled when the farm's last big frame that asked for its turn is done. */
  lastTurn: Promise<void>;
}

/** What a frame was let in with: the script time reserved for it, to settle once it ran. */
export interface Admission {
  /** How long the frame must wait (ms) before it is applied; 0 when the farm is within its budgets. */
  waitMs: number;
  reason?: FarmThrottle;
  reservedMs: number;
}

export class FarmBudgets {
  private readonly budgets = new Map<string, Budget>();

  constructor(
    private readonly bytesPerSecond: number,
    private readonly applyMillisecondsPerSecond: number,
  ) {}

  private of(farm: string, now: number): Budget {
    let budget = this.budgets.get(farm);
    if (!budget) {
      budget = {
        bytes: new TokenBucket(this.bytesPerSecond, this.bytesPerSecond, now),
        apply: new TokenBucket(
          this.applyMillisecondsPerSecond,
          this.applyMillisecondsPerSecond * APPLY_BURST_SECONDS,
          now,
        ),
        msPerByte: DEFAULT_APPLY_MS_PER_BYTE,
        lastTurn: Promise.resolve(),
      };
      this.budgets.set(farm, budget);
    }
    return budget;
  }

  /**
   * A big frame (one that reserves) waits for the farm's big frames before it to be done, then is
   * admitted: one at a time, each admitted when its turn comes, so that none is let in on an
   * estimate that the frames before it have since settled (their waits, worked out apart, would
   * end together, and their scripts follow one another in Redis's queue). Resolves with what to
   * call once the frame is done; at once, for a small frame.
   */
  async turn(farm: string, bytes: number): Promise<() => void> {
    if (bytes < RESERVE_FROM_BYTES) return () => {};
    const budget = this.of(farm, Date.now());
    const before = budget.lastTurn;
    let done!: () => void;
    budget.lastTurn = new Promise<void>((resolve) => (done = resolve));
    await before;
    return done;
  }

  /**
   * A frame of `bytes` for the farm: reserves the script time it is expected to take and says how
   * long it must wait, and why, before it is applied. Every admission is settled ({@link settle}),
   * whether or not the frame reached Redis.
   */
  admit(farm: string, bytes: number, now = Date.now()): Admission {
    const budget = this.of(farm, now);
    const reservedMs = bytes >= RESERVE_FROM_BYTES ? bytes * budget.msPerByte : 0;
    const forBytes = budget.bytes.take(bytes, now);
    const forApply = budget.apply.take(reservedMs, now);
    if (forBytes === 0 && forApply === 0) return { waitMs: 0, reservedMs };
    return forApply >= forBytes
      ? { waitMs: forApply, reason: 'apply', reservedMs }
      : { waitMs: forBytes, reason: 'bytes', reservedMs };
  }

  /**
   * The frame admitted with `admission` ran scripts for `scriptMs` (0 when it reached none): the
   * farm is charged the difference from what was reserved, and learns its cost per byte.
   */
  settle(farm: string, admission: Admission, bytes: number, scriptMs: number, now = Date.now()): void {
    const budget = this.budgets.get(farm);
    if (!budget) return;
    budget.apply.take(scriptMs - admission.reservedMs, now);
    if (scriptMs > 0 && bytes >= RESERVE_FROM_BYTES) {
      budget.msPerByte = (1 - LEARN_WEIGHT) * budget.msPerByte + LEARN_WEIGHT * (scriptMs / bytes);
    }
  }

  /** Forgets farms no longer configured. */
  retain(farms: readonly string[]): void {
    const keep = new Set(farms);
    for (const farm of this.budgets.keys()) if (!keep.has(farm)) this.budgets.delete(farm);
  }
}
