/**
 * How long the agent waits before it connects again, by why the last connection ended: a pure
 * function, so that the link (collector-link.ts) and the restart bench (bench/restart.ts) follow one
 * rule.
 *
 * - The collector closed with 1001 (going away: a drain before a planned restart): the collector
 *   is not broken and every agent of the fleet heard the same close at the same instant. Each waits
 *   a uniform random part of a spread window (15 s by default, at most a third of the host lease),
 *   so that 10,000 agents come back at about 700 a second instead of all at once, and all within a
 *   host lease (3 × heartbeatSeconds, 45 s by default). The backoff neither grows nor starts again.
 * - The upgrade was refused with 429 (too many upgrades from this address) and a `Retry-After`:
 *   the collector is busy, not broken. Wait what it asks plus jitter; the backoff does not grow.
 * - 503 with a `Retry-After` (draining, or full): at least what it asks plus jitter, and the backoff
 *   grows as for any failure.
 * - Anything else: exponential backoff with jitter over the upper half of the step.
 * - Except that within a host lease of a drain (`afterDrain`), the backoff of failed attempts and
 *   503s grows to AFTER_DRAIN_MAX_MS at most: the collector is being restarted, the host's lease
 *   is held for its agent meanwhile (docs/design.md §2 rule 10), and an agent that backed off to
 *   half a minute while nothing listened would come back long after the new collector is ready and
 *   the lease has lapsed. A refused connect costs next to nothing; past the lease, the usual backoff.
 */

import { leaseMs } from '@rasmon/protocol';

/** The reconnect policy's settings. */
export interface ReconnectPolicy {
  initialMs: number;
  maxMs: number;
  /** After a 1001 close, a uniform random delay below this. */
  drainSpreadMs: number;
}

export const DEFAULT_RECONNECT_POLICY: Readonly<ReconnectPolicy> = Object.freeze({
  initialMs: 1000,
  maxMs: 60_000,
  drainSpreadMs: 15_000,
});

/** A `Retry-After` beyond this is taken as this: a collector cannot park its agents for hours. */
export const MAX_RETRY_AFTER_MS = 600_000;
/** Longest backoff step of an attempt within a host lease of a drain. */
export const AFTER_DRAIN_MAX_MS = 5000;
/** Added to a `Retry-After` at random, below this. */
export const RETRY_AFTER_JITTER_MS = 1000;

/** Why the last connection (or attempt) ended. */
export type Disconnect =
  /**
   * The collector closed an open connection with 1001; `leaseMs`, the host lease of the collector
   * that drained (3 × its `heartbeatSeconds`), when its welcome said.
   */
  | { kind: 'drained'; leaseMs?: number }
  /** The upgrade got this HTTP status; `retryAfterMs` from its `Retry-After`, if any. */
  | { kind: 'refused'; status: number; retryAfterMs: number | undefined; afterDrain?: boolean }
  /** Any other end: a network error, another close code, no welcome in time. */
  | { kind: 'failed'; afterDrain?: boolean };

export interface ReconnectPlan {
  delayMs: number;
  /** The backoff step for the next failure (the one given, or one more). */
  attempt: number;
}

/**
 * The delay before the next connection, and the backoff step after it. `attempt` is the number of
 * failed attempts since the link last ran healthy; `random` returns [0, 1).
 */
export function reconnectDelay(
  cause: Disconnect,
  attempt: number,
  policy: ReconnectPolicy = DEFAULT_RECONNECT_POLICY,
  random: () => number = Math.random,
): ReconnectPlan {
  if (cause.kind === 'drained') return { delayMs: random() * drainSpreadMs(policy, cause.leaseMs), attempt };
  const retryAfterMs = cause.kind === 'refused' ? cause.retryAfterMs : undefined;
  if (retryAfterMs !== undefined && cause.kind === 'refused' && cause.status === 429)
    return { delayMs: afterRetryAfter(retryAfterMs, random), attempt };
  const maxMs = cause.afterDrain ? Math.min(policy.maxMs, AFTER_DRAIN_MAX_MS) : policy.maxMs;
  const ceiling = Math.min(maxMs, policy.initialMs * 2 ** attempt);
  // Full jitter over the upper half: agents of a farm do not come back in step.
  const backoff = ceiling / 2 + random() * (ceiling / 2);
  const floor = retryAfterMs !== undefined && cause.kind === 'refused' && cause.status === 503;
  return { delayMs: floor ? Math.max(backoff, afterRetryAfter(retryAfterMs, random)) : backoff, attempt: attempt + 1 };
}

/**
 * The spread window after a drain: the configured one, but at most a third of the host lease, so
 * that the last agent is back, with time for a failed attempt or two, before its lease lapses (a
 * collector with a short heartbeat keeps a short lease).
 */
function drainSpreadMs(policy: ReconnectPolicy, leaseMs: number | undefined): number {
  return leaseMs === undefined ? policy.drainSpreadMs : Math.min(policy.drainSpreadMs, leaseMs / 3);
}

/**
 * What `Retry-After` asks plus up to a second of jitter: whole seconds would bring agents told the
 * same back in the same instant. No more: the collector gives each refused attempt its own turn
 * (collector/src/ingest/rate-limit.ts), and a jitter that grew with the wait would only move the
 * last agents' turns later.
 */
function afterRetryAfter(retryAfterMs: number, random: () => number): number {
  return Math.min(Math.max(0, retryAfterMs), MAX_RETRY_AFTER_MS) + random() * RETRY_AFTER_JITTER_MS;
}

/**
 * A `Retry-After` header in milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3);
 * undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  // An HTTP date names its weekday; Date.parse would also take "-1" as a year.
  if (!/^[A-Za-z]{3}, /.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

/**
 * Whether an attempt now is within a host lease (3 × `heartbeatSeconds` of the collector that
 * drained) of the last drain, at `drainedAtMs` (undefined: none since the last welcome).
 */
export function withinDrainLease(drainedAtMs: number | undefined, heartbeatSeconds: number, now = Date.now()): boolean {
  return drainedAtMs !== undefined && now - drainedAtMs < leaseMs(heartbeatSeconds);
}
