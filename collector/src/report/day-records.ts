/**
 * Day records (docs/design.md §2 rule 7 and §4): per farm and UTC day, the peak users and when it was
 * reached, the seats that day, the highest overuse, the overuse admissions and the time over seats.
 *
 * The Lua scripts keep the current day in the farm's meta hash and, when the day turns, write the
 * finished record into the peaks hash under the day's number (its fields: DAY_RECORD_FIELDS of
 * redis-schema.ts; a field left empty is unknown). The day still open is read by the same rule, by
 * a script (readOpenDay), so it reads alike before and after it closes. Days written before
 * records existed hold the bare peak (`"42"`): they keep their peak and leave the rest unknown, so
 * `/api/v1/farms/{farm}/peaks` and the history read the same hash.
 */
import type { Cluster, Redis } from 'ioredis';
import type { FarmConfig } from '../config/config.js';
import { farmRules } from '../config/farm-directory.js';
import { readOpenDay } from '../engine/license-engine.js';
import { splitDayRecord, type RedisKeys, type StoredCorrection } from '../engine/redis-schema.js';
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
  /** Set when `rasmon-collector correct` rewrote the day: when, by whom and why. */
  corrected?: { at: string; by: string; reason: string };
}

/** The corrections of a farm's days (`rasmon-collector correct`), by day number; malformed ones left out. */
export async function readCorrections(
  redis: Redis | Cluster,
  keys: RedisKeys,
  farm: string,
): Promise<Map<number, NonNullable<DayRecord['corrected']>>> {
  const stored = await redis.hgetall(keys.corrections(farm));
  const out = new Map<number, NonNullable<DayRecord['corrected']>>();
  for (const [field, json] of Object.entries(stored)) {
    try {
      const value = JSON.parse(json) as Partial<StoredCorrection>;
      if (typeof value.at !== 'number' || typeof value.by !== 'string' || typeof value.reason !== 'string') continue;
      out.set(Number(field), { at: new Date(value.at).toISOString(), by: value.by, reason: value.reason });
    } catch {
      // Not one of ours: the day shows as recorded.
    }
  }
  return out;
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
const minutes = (ms: number | undefined) => (ms === undefined ? null : Math.round(ms / 6000) / 10);

function optional(text: string | undefined | null): number | undefined {
  if (text === undefined || text === null || text === '') return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

/** Reads a stored value of the peaks hash: a finished record, or a bare peak from before records. */
export function parseStoredDay(day: number, value: string): DayRecord | undefined {
  const record = splitDayRecord(value);
  const peak = optional(record.peakUsers);
  if (peak === undefined) return undefined;
  return {
    day: dayText(day),
    peakUsers: peak,
    peakAt: iso(optional(record.peakAtMs)),
    seats: optional(record.seats) ?? null,
    maxOveruse: optional(record.maxOveruse) ?? null,
    admissions: optional(record.admissions) ?? null,
    minutesOverSeats: minutes(optional(record.msOverSeats)),
  };
}

export interface FarmHistory {
  farm: FarmConfig;
  /** Oldest first, only days with a record within the period. */
  days: DayRecord[];
}

async function serverTime(redis: Redis | Cluster): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/** Reads the day records of each farm within the period: the peaks hash and the open day, all farms at once. */
export async function readHistory(
  redis: Redis | Cluster,
  keys: RedisKeys,
  farms: readonly FarmConfig[],
  period: Period,
): Promise<{ now: number; farms: FarmHistory[] }> {
  const now = await serverTime(redis);
  const histories = await Promise.all(
    farms.map(async (farm): Promise<FarmHistory> => {
      const [stored, open, corrections] = await Promise.all([
        redis.hgetall(keys.farm(farm.id).peaks),
        readOpenDay(redis, keys, farmRules(farm), now),
        readCorrections(redis, keys, farm.id),
      ]);
      const days: DayRecord[] = [];
      for (const [field, value] of Object.entries(stored)) {
        const day = Number(field);
        if (!Number.isInteger(day) || day < period.fromDay || day > period.toDay || day === open?.day) continue;
        const record = parseStoredDay(day, value);
        const corrected = corrections.get(day);
        if (record) days.push(corrected ? { ...record, corrected } : record);
      }
      if (open && open.day >= period.fromDay && open.day <= period.toDay) {
        const record = parseStoredDay(open.day, open.record);
        if (record) days.push(record);
      }
      days.sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0));
      return { farm, days };
    }),
  );
  return { now, farms: histories };
}
