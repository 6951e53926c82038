/**
 * RAS's own license figures as of the broker's last answered poll, for the report to set beside
 * rasmon's period figures (docs/api.md, "License reports"). They are RAS's numbers at one moment,
 * not a figure of the period: the broker keeps no history rasmon could read.
 */
import type { FarmConfig } from '../config/config.js';
import type { BrokerState, FarmReader } from '../engine/farm-reader.js';

export interface RasFigures {
  /** `usersLicenseInfo`: the users RAS counted; null while RAS gave no count. */
  users: number | null;
  /** `usersPeak`: the most users RAS has counted at once. */
  peakUsers: number | null;
  /** `installedUsers`. */
  seats: number | null;
  /** SPLA only, when RAS gives them: the usage of its current billing period, and that period. */
  currPeriodUsage?: number;
  billingPeriodStart?: string;
  billingPeriodEnd?: string;
  /** When the broker last answered (ISO-8601); null when it never has. */
  at: string | null;
}

/** ISO-8601, or null for no time or one a Date cannot hold (a stored value must not fail the report). */
function isoOrNull(ms: number | undefined): string | null {
  const date = new Date(ms ?? Number.NaN);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** The figures of a farm's broker state; null for a farm without a broker. */
export function rasFigures(broker: BrokerState | undefined): RasFigures | null {
  if (!broker) return null;
  const license = broker.license;
  return {
    users: license?.users ?? null,
    peakUsers: license?.peakUsers ?? null,
    seats: license?.seats ?? null,
    ...(license?.currPeriodUsage === undefined ? {} : { currPeriodUsage: license.currPeriodUsage }),
    ...(license?.billingPeriodStart === undefined ? {} : { billingPeriodStart: license.billingPeriodStart }),
    ...(license?.billingPeriodEnd === undefined ? {} : { billingPeriodEnd: license.billingPeriodEnd }),
    at: isoOrNull(broker.lastOkAt),
  };
}

/** Reads the broker state of the farms with a `ras` block, by farm id (one pipelined read). */
export async function readRasFigures(
  reader: FarmReader,
  farms: readonly FarmConfig[],
): Promise<Map<string, RasFigures>> {
  const figures = new Map<string, RasFigures>();
  const withBroker = farms.filter((farm) => farm.ras !== undefined);
  if (withBroker.length === 0) return figures;
  const read = await reader.read(withBroker);
  for (const farm of read.farms) {
    const summary = rasFigures(farm.broker);
    if (summary) figures.set(farm.id, summary);
  }
  return figures;
}
