/**
 * The reconnect policy: a drain spreads the fleet over the window without touching the backoff, a
 * 429 waits what Retry-After asks without growing it, a 503 waits at least that long, anything else
 * backs off exponentially as before, to 5 s at most within a host lease of a drain.
 */
import { describe, expect, it } from 'vitest';
import {
  AFTER_DRAIN_MAX_MS,
  DEFAULT_RECONNECT_POLICY,
  MAX_RETRY_AFTER_MS,
  parseRetryAfter,
  reconnectDelay,
  withinDrainLease,
  type Disconnect,
} from '../src/link/reconnect-delay.js';

const policy = { initialMs: 1000, maxMs: 60_000, drainSpreadMs: 15_000 };
const at = (value: number) => () => value;
const failed: Disconnect = { kind: 'failed' };
const drained: Disconnect = { kind: 'drained' };
const refused = (status: number, retryAfterMs?: number): Disconnect => ({ kind: 'refused', status, retryAfterMs });

describe('reconnect delay', () => {
  it('after a drain (1001) the delay is uniform over the spread window and the backoff step is kept', () => {
    expect(reconnectDelay(drained, 0, policy, at(0))).toEqual({ delayMs: 0, attempt: 0 });
    expect(reconnectDelay(drained, 0, policy, at(0.5))).toEqual({ delayMs: 7500, attempt: 0 });
    expect(reconnectDelay(drained, 4, policy, at(0.999)).delayMs).toBeCloseTo(14_985);
    expect(reconnectDelay(drained, 4, policy, at(0.999)).attempt).toBe(4);
  });

  it('a drain spread stays below the default host lease (3 × 15 s heartbeat)', () => {
    expect(DEFAULT_RECONNECT_POLICY.drainSpreadMs).toBeLessThan(3 * 15_000);
    expect(reconnectDelay(drained, 9, DEFAULT_RECONNECT_POLICY, at(0.9999)).delayMs).toBeLessThan(45_000);
  });

  it("a drain spread is at most a third of the draining collector's host lease", () => {
    // heartbeatSeconds 3: a 9 s lease, so the window is 3 s, not the 15 s configured.
    expect(reconnectDelay({ kind: 'drained', leaseMs: 9000 }, 0, policy, at(0.9999)).delayMs).toBeCloseTo(2999.7);
    expect(reconnectDelay({ kind: 'drained', leaseMs: 9000 }, 0, policy, at(0.5)).delayMs).toBe(1500);
    // The default lease leaves the configured window as it is.
    expect(reconnectDelay({ kind: 'drained', leaseMs: 45_000 }, 0, policy, at(0.5)).delayMs).toBe(7500);
  });

  it('a 429 waits Retry-After plus up to a second of jitter, and does not grow the backoff', () => {
    expect(reconnectDelay(refused(429, 1000), 3, policy, at(0))).toEqual({ delayMs: 1000, attempt: 3 });
    expect(reconnectDelay(refused(429, 1000), 3, policy, at(0.5))).toEqual({ delayMs: 1500, attempt: 3 });
    expect(reconnectDelay(refused(429, 20_000), 3, policy, at(1))).toEqual({ delayMs: 21_000, attempt: 3 });
    // After many refusals the wait is still what the collector asked, not the backoff's minute.
    expect(reconnectDelay(refused(429, 2000), 12, policy, at(1)).delayMs).toBe(3000);
  });

  it('a Retry-After beyond ten minutes is taken as ten minutes', () => {
    const plan = reconnectDelay(refused(429, 86_400_000), 0, policy, at(0));
    expect(plan.delayMs).toBe(MAX_RETRY_AFTER_MS);
  });

  it('a 503 with Retry-After waits at least that long, and the backoff grows', () => {
    expect(reconnectDelay(refused(503, 10_000), 0, policy, at(0))).toEqual({ delayMs: 10_000, attempt: 1 });
    // The backoff's own step, when longer, wins.
    expect(reconnectDelay(refused(503, 1000), 5, policy, at(0))).toEqual({ delayMs: 16_000, attempt: 6 });
  });

  it('within a host lease of a drain, failures and 503s back off to 5 s at most; 429 and past the lease as usual', () => {
    const afterDrain = (cause: Disconnect): Disconnect => ({ ...cause, afterDrain: true }) as Disconnect;
    expect(reconnectDelay(afterDrain(failed), 20, policy, at(1))).toEqual({ delayMs: AFTER_DRAIN_MAX_MS, attempt: 21 });
    expect(reconnectDelay(afterDrain(failed), 0, policy, at(0))).toEqual({ delayMs: 500, attempt: 1 });
    expect(reconnectDelay(afterDrain(refused(503, 1000)), 8, policy, at(1)).delayMs).toBe(AFTER_DRAIN_MAX_MS);
    // A 429's Retry-After is the collector's own pacing, drain or not.
    expect(reconnectDelay(afterDrain(refused(429, 20_000)), 8, policy, at(0)).delayMs).toBe(20_000);
    // The lease is 3 × heartbeatSeconds from the drain (15 s heartbeat: 45 s).
    const drainedAt = 1_000_000;
    expect(withinDrainLease(drainedAt, 15, drainedAt + 44_999)).toBe(true);
    expect(withinDrainLease(drainedAt, 15, drainedAt + 45_000)).toBe(false);
    expect(withinDrainLease(undefined, 15, drainedAt)).toBe(false);
  });

  it('a 429 without Retry-After, and any other failure, back off exponentially over the upper half', () => {
    for (const cause of [failed, refused(429), refused(401), refused(500, 5000)]) {
      expect(reconnectDelay(cause, 0, policy, at(0))).toEqual({ delayMs: 500, attempt: 1 });
      expect(reconnectDelay(cause, 2, policy, at(1))).toEqual({ delayMs: 4000, attempt: 3 });
      expect(reconnectDelay(cause, 20, policy, at(0.5))).toEqual({ delayMs: 45_000, attempt: 21 });
    }
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads delta-seconds and HTTP dates', () => {
    expect(parseRetryAfter('1', now)).toBe(1000);
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter(['5', '9'], now)).toBe(5000);
  });

  it('a date in the past is no wait, a huge one is capped, nonsense is absent', () => {
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('99999999999', now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
    expect(parseRetryAfter('-1', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });
});
