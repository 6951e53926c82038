/**
 * Day arithmetic for tests that read what "today" or "this month" holds: UTC day numbers as the
 * collector keeps them, and a wait that keeps such a test on one side of midnight.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export const DAY_MS = 86_400_000;

/** Today's UTC day number (days since 1970-01-01). */
export const dayNumber = (ms = Date.now()) => Math.floor(ms / DAY_MS);

/** `YYYY-MM-DD` of a day number. */
export const dayText = (day: number) => new Date(day * DAY_MS).toISOString().slice(0, 10);

/** The day number of the first of the UTC month that holds `ms`. */
export function firstOfMonth(ms = Date.now()): number {
  const date = new Date(ms);
  date.setUTCDate(1);
  return dayNumber(date.getTime());
}

/**
 * Waits until at least `marginMs` of the UTC day is left, so that a test which sets something up "today"
 * and then reads today's figures does both on one day, whatever clock it runs at. Crossing midnight is
 * what the calendar test (test/calendar.test.ts) is for.
 */
export async function clearOfMidnight(marginMs = 60_000): Promise<void> {
  const left = DAY_MS - (Date.now() % DAY_MS);
  if (left < marginMs) await sleep(left + 1_000);
}

/** An ISO time `days` from now (negative: ago), for expiry dates that must hold whatever the date. */
export const daysFromNow = (days: number) => new Date(Date.now() + days * DAY_MS).toISOString();
