/**
 * The forecast of a farm's daily peak (docs/design.md §4, "Forecast"): from the closed days' peaks,
 * how many days until the busiest day of a week reaches the seats at the present trend.
 *
 * The fit is made on weekly maxima, not on the days: the last 8 blocks of 7 closed days (the newest
 * ends yesterday), each the highest peak of its days. Every block holds each weekday once, so a
 * weekday/weekend pattern gives every block the same maximum and no slope, and a holiday lowers a
 * day, not its week's maximum. Through those points a Theil–Sen line (the median of the pairwise
 * slopes, the median intercept) through each maximum at the day it was reached, which one or two odd weeks (a week of holidays, a migration) do not
 * tilt; and the Mann–Kendall test on the same points decides whether there is a rising trend at all,
 * so noise around a flat level is not read as one. Pure: the caller reads the day records.
 */
import { DAY_MS } from '@rasmon/protocol';

/** A farm's forecast as the API, the report and `ras_license_forecast_full_days` give it. */
export interface PeakForecast {
  /** Whole days from today (UTC) until the trend of the weekly peak reaches the seats; 0 when it has. */
  fullInDays: number;
  /** That UTC day, `YYYY-MM-DD`. */
  fullBy: string;
}

/** One closed UTC day's peak, by day number (days since the epoch). */
export interface DayPeak {
  day: number;
  peakUsers: number;
}

/** Weeks fitted: 8 blocks of 7 closed days. */
export const FORECAST_WEEKS = 8;
/** Fewer usable weeks than this and there is no forecast (so 3 × 7 + 4 = 25 closed days at the least). */
export const FORECAST_MIN_WEEKS = 4;
/** A block counts when at least this many of its 7 days have a record (the collector ran that week). */
export const FORECAST_MIN_DAYS_PER_WEEK = 4;
/** A forecast further out than this is none: eight weeks say nothing about next year. */
export const FORECAST_HORIZON_DAYS = 365;
/** The one-sided Mann–Kendall test at 90 %: z at or above this reads as a rising trend. */
const RISING_Z = 1.2816;

/** The day numbers a forecast made on `today` reads: the closed days of its blocks, oldest first. */
export function forecastDays(today: number): number[] {
  const days: number[] = [];
  for (let day = today - 7 * FORECAST_WEEKS; day < today; day += 1) days.push(day);
  return days;
}

const dayText = (day: number) => new Date(day * DAY_MS).toISOString().slice(0, 10);

function median(values: number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * The weekly maxima, oldest first, each at the day it was reached (the latest such day of its
 * block); blocks with records on fewer than 4 of their days are left out.
 */
export function weeklyMaxima(days: readonly DayPeak[], today: number): DayPeak[] {
  const weeks: DayPeak[] = [];
  for (let week = FORECAST_WEEKS - 1; week >= 0; week -= 1) {
    const last = today - 1 - 7 * week;
    const first = last - 6;
    const inBlock = days.filter((d) => d.day >= first && d.day <= last && Number.isFinite(d.peakUsers));
    if (new Set(inBlock.map((d) => d.day)).size < FORECAST_MIN_DAYS_PER_WEEK) continue;
    let top = inBlock[0]!;
    for (const d of inBlock)
      if (d.peakUsers > top.peakUsers || (d.peakUsers === top.peakUsers && d.day > top.day)) top = d;
    weeks.push({ day: top.day, peakUsers: top.peakUsers });
  }
  return weeks;
}

/**
 * Mann–Kendall's z for a rising trend (no correction for ties, which only makes it stricter):
 * S counts the later points above an earlier one minus those below.
 */
function mannKendallZ(values: readonly number[]): number {
  const n = values.length;
  let s = 0;
  for (let i = 0; i < n; i += 1) for (let j = i + 1; j < n; j += 1) s += Math.sign(values[j]! - values[i]!);
  const variance = (n * (n - 1) * (2 * n + 5)) / 18;
  return s > 0 ? (s - 1) / Math.sqrt(variance) : 0;
}

/**
 * The forecast of a farm on the UTC day `today` (the day still open) from its closed days' peaks
 * (any order; days outside the last 8 weeks are ignored) and its seats now. Null when the farm has
 * no seats (SPLA without a cap), fewer than 4 usable weeks, no rising trend, or a trend that reaches
 * the seats only after 365 days. When the fitted weekly peak has reached the seats already, the
 * forecast is 0 days, today: the farm is full now, rising or not.
 */
export function forecastFull(days: readonly DayPeak[], today: number, seats: number | undefined): PeakForecast | null {
  if (seats === undefined || !(seats > 0)) return null;
  const weeks = weeklyMaxima(days, today);
  if (weeks.length < FORECAST_MIN_WEEKS) return null;
  const slopes: number[] = [];
  for (let i = 0; i < weeks.length; i += 1)
    for (let j = i + 1; j < weeks.length; j += 1)
      slopes.push((weeks[j]!.peakUsers - weeks[i]!.peakUsers) / (weeks[j]!.day - weeks[i]!.day));
  const slope = median(slopes);
  const intercept = median(weeks.map((w) => w.peakUsers - slope * w.day));
  if (intercept + slope * today >= seats) return { fullInDays: 0, fullBy: dayText(today) };
  if (slope <= 0 || mannKendallZ(weeks.map((w) => w.peakUsers)) < RISING_Z) return null;
  // The first whole day on or above the seats; the margin keeps float rounding from adding a day.
  const fullDay = Math.ceil((seats - intercept) / slope - 1e-9);
  const fullInDays = Math.max(1, fullDay - today);
  if (fullInDays > FORECAST_HORIZON_DAYS) return null;
  return { fullInDays, fullBy: dayText(today + fullInDays) };
}
