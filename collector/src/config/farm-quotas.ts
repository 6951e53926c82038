/**
 * A farm's quotas (docs/design.md §6, "One farm against the others"): the sessions it may hold and
 * the users new to it it may take in a rolling minute. Sized to its seats, so a real farm never
 * meets them while a leaked token meets them at once; the Lua that applies a frame enforces them
 * (applyFrame.lua, includes/quotas.lua), since only it knows the farm's sessions and users atomically.
 */
import { CONFIG_DEFAULTS, type FarmConfig } from './config.js';

export interface FarmQuotas {
  /** Sessions the farm's hosts may hold together. */
  maxSessions: number;
  /** Users not consuming on the farm, nor new to it within the minute, that may start in one rolling minute. */
  maxNewUsersPerMinute: number;
}

/**
 * The farm's quotas: as configured, else the larger of the floor and a multiple of its seats. `farm`
 * is the farm as everything sees it: with `ras.adopt`, the seats RAS gave once it answered (until
 * then, the configured fallback, if any); a farm without seats (an SPLA farm without a cap, or one
 * waiting for RAS without a fallback) gets the floors.
 */
export function farmQuotas(farm: Pick<FarmConfig, 'seats' | 'maxSessions' | 'maxNewUsersPerMinute'>): FarmQuotas {
  const q = CONFIG_DEFAULTS.farmQuotas;
  const seats = farm.seats ?? 0;
  return {
    maxSessions: farm.maxSessions ?? Math.max(q.sessionsFloor, q.sessionsPerSeat * seats),
    maxNewUsersPerMinute:
      farm.maxNewUsersPerMinute ?? Math.max(q.newUsersPerMinuteFloor, q.newUsersPerMinutePerSeat * seats),
  };
}
