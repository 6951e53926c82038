/**
 * The license report of some farms over a period, read from Redis as both `rasmon-collector report`
 * and `GET /api/v1/report` give it. The farms sharing a license key with a selected farm are read too,
 * so that a key's figures (an SPLA key's billed users) are the whole key's however the report is
 * narrowed (`farmsToRead`); their own rows are then left out (`narrowReport`). Distinct users, when
 * asked for, are those of the selected farms alone.
 */
import type { Cluster, Redis } from 'ioredis';
import type { FarmConfig } from '../config/config.js';
import type { FarmReader } from '../engine/farm-reader.js';
import type { RedisKeys } from '../engine/redis-schema.js';
import { readHistory } from './day-records.js';
import { readDistinctUsers } from './distinct-users.js';
import { readRasFigures } from './ras-figures.js';
import { buildReport, farmsToRead, narrowReport, readForecasts, type Report } from './report.js';
import type { Period } from './report-period.js';

export interface ReportSource {
  redis: Redis | Cluster;
  keys: RedisKeys;
  reader: FarmReader;
}

export async function readReport(
  { redis, keys, reader }: ReportSource,
  all: readonly FarmConfig[],
  selected: readonly FarmConfig[],
  period: Period,
  distinctUsers: boolean,
  /** `distinctUsers.retentionMonths`: months older than it report no distinct users. */
  retentionMonths: number,
): Promise<Report> {
  const toRead = farmsToRead(all, selected);
  const read = await readHistory(redis, keys, toRead, period);
  const ras = await readRasFigures(reader, toRead);
  const forecasts = await readForecasts(reader, toRead);
  const ids = new Set(selected.map((farm) => farm.id));
  const distinct = distinctUsers
    ? await readDistinctUsers(
        redis,
        keys,
        read.farms.filter((history) => ids.has(history.farm.id)),
        period,
        { months: retentionMonths, now: read.now },
      )
    : undefined;
  return narrowReport(buildReport(read.farms, period, read.now, ras, forecasts, distinct), selected);
}
