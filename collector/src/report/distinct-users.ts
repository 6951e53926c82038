/**
 * Distinct users per calendar month (UTC), per farm and per customer: the number Microsoft's RDS SAL
 * is reported by (docs/design.md §4, "Customers, SPLA and SAL"), read from the month sets the engine
 * fills (engine/month-users.ts). A customer's count is the union of its farms' sets, so a user on two
 * farms of one customer counts once for it. The sets are per whole month: a period that touches part
 * of a month reports that month's whole count.
 */
import type { Cluster, Redis } from 'ioredis';
import { DAY_MS } from '@rasmon/protocol';
import { stringify } from 'csv-stringify/sync';
import type { FarmConfig } from '../config/config.js';
import { monthKept, monthsOf, readMonthUsers, readMonthUsersSince } from '../engine/month-users.js';
import type { RedisKeys } from '../engine/redis-schema.js';
import type { FarmHistory } from './day-records.js';
import type { MonthUsersReport } from './report.js';
import type { Period } from './report-period.js';

/** `YYYY-MM`: a month as the API and the command take it. */
export const MONTH_PATTERN = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** Each farm's users of one month. */
async function monthSets(
  redis: Redis | Cluster,
  keys: RedisKeys,
  farms: readonly FarmConfig[],
  month: string,
): Promise<Map<string, string[]>> {
  const sets = await Promise.all(farms.map((farm) => readMonthUsers(redis, keys, farm.id, month)));
  return new Map(farms.map((farm, index) => [farm.id, sets[index]!]));
}

/** Each farm's first recorded month (`monthUsersSince`), undefined where it has none. */
async function firstMonths(
  redis: Redis | Cluster,
  keys: RedisKeys,
  farms: readonly FarmConfig[],
): Promise<Map<string, string | undefined>> {
  return new Map(
    await Promise.all(farms.map(async (farm) => [farm.id, await readMonthUsersSince(redis, keys, farm.id)] as const)),
  );
}

/**
 * Whether a farm has distinct-user data for the month: not past the retention (`kept`), and not
 * before the first month it recorded (before this count existed, or before Redis lost its data).
 */
function hasMonthData(month: string, first: string | undefined, kept: boolean): boolean {
  return kept && first !== undefined && month >= first;
}

/**
 * The distinct users of every month the period touches. A month is null ("no data") for a farm
 * when it is before the first month the farm recorded (`monthUsersSince`: before this count
 * existed, or before Redis lost its data) or past `retentionMonths` at `now`; otherwise a farm with
 * no user recorded that month counts 0 when it recorded a day of the period in that month, else
 * null. One month's sets are held at a time and dropped once counted, so a long period costs time,
 * not memory.
 */
export async function readDistinctUsers(
  redis: Redis | Cluster,
  keys: RedisKeys,
  histories: readonly FarmHistory[],
  period: Period,
  retention: { months: number; now: number },
): Promise<MonthUsersReport[]> {
  const months = monthsOf(period.fromDay * DAY_MS, period.toDay * DAY_MS);
  const farms = histories.map((history) => history.farm);
  const since = await firstMonths(redis, keys, farms);
  const customers = new Map<string, string[]>();
  for (const farm of farms) {
    if (farm.customer !== undefined) customers.set(farm.customer, [...(customers.get(farm.customer) ?? []), farm.id]);
  }
  const report: MonthUsersReport[] = [];
  for (const month of months) {
    const users = await monthSets(redis, keys, farms, month);
    const kept = monthKept(month, retention.months, retention.now);
    const count = (history: FarmHistory): number | null => {
      if (!hasMonthData(month, since.get(history.farm.id), kept)) return null;
      const n = users.get(history.farm.id)!.length;
      if (n > 0) return n;
      return history.days.some((day) => day.day.startsWith(month)) ? 0 : null;
    };
    const farmRows = histories.map((history) => ({
      farm: history.farm.id,
      customer: history.farm.customer ?? null,
      distinctUsers: count(history),
    }));
    report.push({
      month,
      farms: farmRows,
      customers: [...customers.entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([customer, ids]) => {
          const rows = farmRows.filter((row) => ids.includes(row.farm));
          const union = new Set(ids.flatMap((id) => users.get(id)!));
          return {
            customer,
            farms: ids,
            distinctUsers: union.size > 0 ? union.size : rows.some((row) => row.distinctUsers !== null) ? 0 : null,
          };
        }),
    });
  }
  return report;
}

export const USER_LIST_COLUMNS = ['month', 'customer', 'user', 'farms'] as const;

/** None of the farms asked for has distinct-user data for the month: there is no list to give. */
export class NoMonthDataError extends Error {}

/** The user list of one month, and the farms asked for that have no data for it (left out). */
export interface UserList {
  csv: string;
  farmsWithoutData: string[];
}

/**
 * The users behind the counts of one month, for an audit: one row per customer and user (the farms
 * it was seen on separated by spaces), and per user of a farm without a customer (`customer` empty).
 * Farms with no data for the month are left out and named; with none that has data, NoMonthDataError.
 * RFC 4180 as the other CSVs. User names are those the agents and the broker gave, normalized (rule
 * 4); a cell starting with = + - @ is prefixed with ' so a spreadsheet shows it as text.
 */
export async function userListCsv(
  redis: Redis | Cluster,
  keys: RedisKeys,
  asked: readonly FarmConfig[],
  month: string,
  retention: { months: number; now: number },
): Promise<UserList> {
  // A farm has no list for a month the counts call "no data" (readDistinctUsers): past the
  // retention, or before its first recorded month. An empty list there would read as no users.
  const kept = monthKept(month, retention.months, retention.now);
  const since = await firstMonths(redis, keys, asked);
  const farms = asked.filter((farm) => hasMonthData(month, since.get(farm.id), kept));
  if (farms.length === 0) {
    throw new NoMonthDataError(
      kept
        ? `no distinct-user data for ${month}: it is before the first month recorded`
        : `no distinct-user data for ${month}: it is past distinctUsers.retentionMonths (${retention.months})`,
    );
  }
  const sets = await monthSets(redis, keys, farms, month);
  const groups = new Map<string, { customer: string; users: Map<string, string[]> }>();
  for (const farm of farms) {
    const group = farm.customer === undefined ? `farm:${farm.id}` : `customer:${farm.customer}`;
    let entry = groups.get(group);
    if (!entry) {
      entry = { customer: farm.customer ?? '', users: new Map() };
      groups.set(group, entry);
    }
    for (const user of sets.get(farm.id)!) entry.users.set(user, [...(entry.users.get(user) ?? []), farm.id]);
  }
  const safe = (text: string) => (/^[=+\-@\t\r]/.test(text) ? `'${text}` : text);
  const rows = [...groups.values()].flatMap((group) =>
    [...group.users.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([user, ids]) => ({ month, customer: group.customer, user: safe(user), farms: ids.join(' ') })),
  );
  const csv = stringify(rows, {
    header: true,
    record_delimiter: 'windows',
    quote_record_delimiter: true,
    columns: [...USER_LIST_COLUMNS],
  });
  return { csv, farmsWithoutData: asked.filter((farm) => !farms.includes(farm)).map((farm) => farm.id) };
}
