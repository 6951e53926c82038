/**
 * The periods reports cover: whole UTC days `YYYY-MM-DD`, both ends included. Shared by the API
 * (`?from=&to=`) and `rasmon-collector report --from --to`, so both refuse the same input alike.
 */
import { DAY_MS, utcDay } from '@rasmon/protocol';
import { RasmonError } from '@rasmon/protocol/kit';

/** A period of whole UTC days as day numbers (days since 1970-01-01), both ends included. */
export interface Period {
  fromDay: number;
  toDay: number;
}

/** Bad `from`/`to` input; the message is one line a person can act on. */
export class PeriodError extends RasmonError {
  constructor(message: string) {
    super('RASMON_PERIOD', message);
    this.name = 'PeriodError';
  }
}

/** A period may span at most this many days: more than the history keeps (≥ 400 days), bounded. */
export const MAX_PERIOD_DAYS = 1000;

const DAY_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;

/** The days a period can name: every date of the four-digit years. */
export const FIRST_DAY = '0001-01-01';
export const LAST_DAY = '9999-12-31';

/** `2026-11-30` → its day number; undefined unless it is a real calendar date from 0001-01-01 to 9999-12-31. */
export function parseDay(text: string): number | undefined {
  const match = DAY_PATTERN.exec(text);
  if (!match) return undefined;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (year < 1) return undefined;
  // setUTCFullYear, unlike Date.UTC, takes years 0-99 as written rather than as 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  // Both roll 2026-02-30 over into March: a date that does not survive the round trip is not real.
  if (utcDay(date.getTime()) !== text) return undefined;
  return date.getTime() / DAY_MS;
}

export function dayText(day: number): string {
  return utcDay(day * DAY_MS);
}

/** The day number of the first of the month `monthsBack` months before the month of `nowMs` (UTC). */
function firstOfMonth(nowMs: number, monthsBack: number): number {
  const date = new Date(nowMs);
  date.setUTCFullYear(date.getUTCFullYear(), date.getUTCMonth() - monthsBack, 1);
  return Math.floor(date.getTime() / DAY_MS);
}

/** The last full calendar month (UTC) before the day of `nowMs`. */
export function lastFullMonth(nowMs: number): Period {
  return { fromDay: firstOfMonth(nowMs, 1), toDay: firstOfMonth(nowMs, 0) - 1 };
}

/** From the first of the month of `nowMs` to its day (UTC). */
export function monthToDate(nowMs: number): Period {
  return { fromDay: firstOfMonth(nowMs, 0), toDay: Math.floor(nowMs / DAY_MS) };
}

/**
 * Reads `from` and `to` (either may be missing: then `fallback` gives both). A date that is not a real
 * `YYYY-MM-DD`, `from` after `to`, or a period longer than {@link MAX_PERIOD_DAYS} is a {@link PeriodError}.
 */
export function parsePeriod(
  from: string | undefined,
  to: string | undefined,
  fallback: Period,
  names = { from: 'from', to: 'to' },
): Period {
  if (from === undefined && to === undefined) return fallback;
  const dayRule = `must be a date YYYY-MM-DD (UTC) from ${FIRST_DAY} to ${LAST_DAY}`;
  const fromDay = from === undefined ? undefined : parseDay(from);
  const toDay = to === undefined ? undefined : parseDay(to);
  if (from !== undefined && fromDay === undefined) {
    throw new PeriodError(`${names.from} ${dayRule}, got ${JSON.stringify(from.slice(0, 40))}`);
  }
  if (to !== undefined && toDay === undefined) {
    throw new PeriodError(`${names.to} ${dayRule}, got ${JSON.stringify(to.slice(0, 40))}`);
  }
  if (fromDay === undefined || toDay === undefined) {
    throw new PeriodError(`${names.from} and ${names.to} go together: give both or neither`);
  }
  if (fromDay > toDay) throw new PeriodError(`${names.from} ${from} is after ${names.to} ${to}`);
  if (toDay - fromDay + 1 > MAX_PERIOD_DAYS) {
    throw new PeriodError(`the period from ${from} to ${to} is longer than ${MAX_PERIOD_DAYS} days`);
  }
  return { fromDay, toDay };
}
