/**
 * The Retry-After of a 429 for too many upgrades from one address: each refusal is given the next
 * turn at the address's rate, so a crowd behind one balancer address is spread over the time the
 * rate needs for it, not told "1 s" all together.
 */
import { describe, expect, it } from 'vitest';
import { KeyedRateLimiter, MAX_RETRY_AFTER_SECONDS } from '../src/ingest/rate-limit.js';

describe('Retry-After for upgrades over the per-address rate', () => {
  it('a crowd refused at once is told to come back in turns at the rate', () => {
    const limiter = new KeyedRateLimiter(50, 500);
    const now = 1_000_000;
    for (let i = 0; i < 500; i += 1) expect(limiter.allow('10.0.0.1', now)).toBe(true);
    expect(limiter.allow('10.0.0.1', now)).toBe(false);
    const waits = Array.from({ length: 1000 }, () => limiter.retryAfterSeconds('10.0.0.1', now));
    expect(waits[0]).toBe(1);
    expect(waits[49]).toBe(1);
    expect(waits[50]).toBe(2);
    expect(waits[999]).toBe(20);
    // Another address has its own turns.
    expect(limiter.retryAfterSeconds('10.0.0.2', now)).toBe(1);
  });

  it('the turns already passed are forgotten, and no wait exceeds the cap', () => {
    const limiter = new KeyedRateLimiter(1, 1);
    const now = 1_000_000;
    for (let i = 0; i < 10; i += 1) limiter.retryAfterSeconds('a', now);
    expect(limiter.retryAfterSeconds('a', now + 60_000)).toBe(1);
    for (let i = 0; i < 1000; i += 1) limiter.retryAfterSeconds('b', now);
    expect(limiter.retryAfterSeconds('b', now)).toBe(MAX_RETRY_AFTER_SECONDS);
  });
});
