/**
 * How heartbeats turn into liveness (docs/design.md §3 and §2 rule 10). Both sides ping every
 * `heartbeatSeconds`; these multiples are the only place the intervals are counted.
 */

/** A peer silent for this many heartbeat intervals is dropped; so is a connection with no hello by then. */
export const SILENT_HEARTBEATS = 2;

/** A host's lease, renewed by each heartbeat, lasts at most this many intervals. */
export const LEASE_HEARTBEATS = 3;

/** How long a peer may stay silent before it is dropped, in milliseconds. */
export function silenceLimitMs(heartbeatSeconds: number): number {
  return SILENT_HEARTBEATS * heartbeatSeconds * 1000;
}

/** How long a host's lease lasts after its last renewal, in milliseconds. */
export function leaseMs(heartbeatSeconds: number): number {
  return LEASE_HEARTBEATS * heartbeatSeconds * 1000;
}
