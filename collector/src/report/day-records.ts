/**
 * Day records (docs/design.md §2 rule 7 and §4): per farm and UTC day, the peak users and when it was
 * reached, the seats that day, the highest overuse, the overuse admissions and the time over seats.
 *
 * The Lua scripts keep the current day in the farm's meta hash and, when the day turns, write the
 * finished record into the peaks hash under the day's number as
 * `peakUsers,peakAtMs,seats,maxOveruse,admissions,msOverSeats` (a field left empty is unknown).
 * Days written before records existed hold the bare peak (`"42"`): they keep their peak and leave
 * the rest unknown, so `/api/v1/farms/{farm}/peaks` and the history read the same hash.
 */
import { Cluster, type Redis } from 'ioredis';
import { DAY_MS } from '@rasmon/protocol';
import type { FarmConfig } from '../config/config.js';
import type { RedisKeys } from '../engine/redis-keys.js';
import { dayText, type Period } from './report-period.js';

/** One farm's UTC day, as the history lists it. */
export interface DayRecord {
  day: string;
  peakUsers: number;
  /** When the day's peak was first reached (ISO-8601); null when unknown. */
  peakAt: string | null;
  /** The farm's seats as of the day's last change; null when unknown or the farm has none (SPLA). */
  seats: number | null;
  /** Highest users above the seats at any moment of the day. */
  maxOveruse: number | null;
  /** Users who started consuming while the farm was above its seats (rule 6), that day. */
  admissions: number | null;
  /** Time users in use were above the seats, in minutes to one decimal, by the Redis clock. */
  minutesOverSeats: number | null;
}

/** The meta fields the current day is kept in (see includes/farm-state.lua). */
export const DAY_META_FIELDS = [
  'day',
  'peakToday',
  'peakAt',
  'daySeats',
  'overToday',
  'admissions',
  'admDay',
  'overMs',
  'overSince',
] as const;

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
const minutes = (ms: number | undefined) => (ms === undefined ? null : Math.round(ms / 6000) / 10);

function optional(text: string | undefined | null): number | undefined {
  if (text === undefined || text === null || text === '') return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

/** Reads a stored value of the peaks hash: a finished record, or a bare peak from before records. */
export function parseStoredDay(day: number, value: string): DayRecord | undefined {
  const parts = value.split(',');
  const peak = optional(parts[0]);
  if (peak === undefined) return undefined;
  const [, peakAt, seats, maxOveruse, admissions, overMs] = parts.map(optional);
  return {
    day: dayText(day),
    peakUsers: peak,
    peakAt: iso(peakAt),
    seats: seats ?? null,
    maxOveruse: maxOveruse ?? null,
    admissions: admissions ?? null,
    minutesOverSeats: minutes(overMs),
  };
}

/** The record of the day still open in the meta hash, as of `now` (time over seats runs on to now). */
export function openDay(meta: Record<string, string | null | undefined>, now: number): DayRecord | undefined {
  const day = optional(meta.day);
  if (day === undefined) return undefined;
  const end = Math.min(now, (day + 1) * DAY_MS);
  const overSince = optional(meta.overSince);
  const overMs = optional(meta.overMs);
  const admissions = optional(meta.admissions) ?? 0;
  const admDay = optional(meta.admDay);
  const running = overSince === undefined ? 0 : Math.max(0, end - overSince);
  return {
    day: dayText(day),
    peakUsers: optional(meta.peakToday) ?? 0,
    peakAt: iso(optional(meta.peakAt)),
    seats: optional(meta.daySeats) ?? null,
    maxOveruse: optional(meta.overToday) ?? null,
    admissions: admDay === undefined ? null : admissions - admDay,
    minutesOverSeats: overMs === undefined && overSince === undefined ? null : minutes((overMs ?? 0) + running),
  };
}

export interface FarmHistory {
  farm: FarmConfig;
  /** Oldest first, only days with a record within the period. */
  days: DayRecord[];
}

type Reply = [Error | null, unknown];

async function serverTime(redis: Redis | Cluster): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/** Reads the day records of each farm within the period: one round trip per farm, all at once. */
export async function readHistory(
  redis: Redis | Cluster,
  keys: RedisKeys,
  farms: readonly FarmConfig[],
  period: Period,
): Promise<{ now: number; farms: FarmHistory[] }> {
  const now = await serverTime(redis);
  const histories = await Promise.all(
    farms.map(async (farm): Promise<FarmHistory> => {
      const k = keys.farm(farm.id);
      const replies = ((await redis
        .pipeline([
          ['hgetall', k.peaks],
          ['hmget', k.meta, ...DAY_META_FIELDS],
        ])
        .exec()) ?? []) as Reply[];
      for (const [err] of replies) if (err) throw err;
      const stored = (replies[0]?.[1] ?? {}) as Record<string, string>;
      const metaValues = (replies[1]?.[1] ?? []) as Array<string | null>;
      const meta = Object.fromEntries(DAY_META_FIELDS.map((field, index) => [field, metaValues[index]]));
      const open = openDay(meta, now);
      const openNumber = optional(meta.day);
      const days: DayRecord[] = [];
      for (const [field, value] of Object.entries(stored)) {
        const day = Number(field);
        if (!Number.isInteger(day) || day < period.fromDay || day > period.toDay || day === openNumber) continue;
        const record = parseStoredDay(day, value);
        if (record) days.push(record);
      }
      if (open && openNumber! >= period.fromDay && openNumber! <= period.toDay) days.push(open);
      days.sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0));
      return { farm, days };
    }),
  );
  return { now, farms: histories };
}
