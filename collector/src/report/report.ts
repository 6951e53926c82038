/**
 * The license report of a period (docs/design.md §4): per farm from its day records, and per license
 * key the farms activated with it and the sum of their period peaks, with RAS's own figures beside
 * a farm's that has a broker. A pure function of the records and those figures, shared by `GET /api/v1/report` and `rasmon-collector report`.
 */
import type { FarmConfig } from '../config/config.js';
import type { FarmReader } from '../engine/farm-reader.js';
import type { PeakForecast } from '../engine/peak-forecast.js';
import type { DayRecord, FarmHistory } from './day-records.js';
import type { RasFigures } from './ras-figures.js';
import { dayText, type Period } from './report-period.js';

/** The forecast of each farm that has one, by farm id (one read of all farms). */
export async function readForecasts(
  reader: FarmReader,
  farms: readonly FarmConfig[],
): Promise<Map<string, PeakForecast>> {
  const read = await reader.read(farms);
  const forecasts = new Map<string, PeakForecast>();
  for (const farm of read.farms) if (farm.forecast) forecasts.set(farm.id, farm.forecast);
  return forecasts;
}

export interface FarmReport {
  farm: string;
  license: FarmConfig['license'];
  licenseKey: string | null;
  /** Seats on the period's last recorded day, else as configured now; null for SPLA without a cap. */
  seats: number | null;
  /** Highest users in use on any day of the period (0 when no day was recorded). */
  peakUsers: number;
  /** The first day that peak was reached, and when; null when no day was recorded. */
  peakDay: string | null;
  peakAt: string | null;
  /** Days with at least one moment above the seats. */
  daysOverSeats: number;
  minutesOverSeats: number;
  admissions: number;
  maxOveruse: number;
  /** Days of the period with a record, and of those, days recorded before full records (peak only). */
  daysRecorded: number;
  daysPeakOnly: number;
  /** Days of the period `rasmon-collector correct` rewrote. */
  daysCorrected: string[];
  /** What SPLA bills: the period peak. Null for primary licenses and sublicenses. */
  billedUsers: number | null;
  /** RAS's own figures as of the broker's last answered poll; null for a farm without a broker. */
  ras: RasFigures | null;
  /**
   * As of the report's reading, not of the period: when the trend of the daily peak reaches the
   * seats (docs/design.md §4, "Forecast"); null when it says nothing.
   */
  forecast: PeakForecast | null;
}

export interface LicenseKeyReport {
  licenseKey: string;
  farms: string[];
  /**
   * The sum, over the key's farms, of each farm's own period peak. Farms peak at different moments,
   * so this is at least the highest number of users the farms held at one moment together.
   */
  peakUsersSum: number;
}

export interface Report {
  from: string;
  to: string;
  /** When the report was read (Redis time, ISO-8601). */
  generatedAt: string;
  farms: FarmReport[];
  licenseKeys: LicenseKeyReport[];
}

function farmReport(
  farm: FarmConfig,
  days: readonly DayRecord[],
  ras: RasFigures | null,
  forecast: PeakForecast | null,
): FarmReport {
  let peak: DayRecord | undefined;
  let daysOverSeats = 0;
  let minutesOverSeats = 0;
  let admissions = 0;
  let maxOveruse = 0;
  let daysPeakOnly = 0;
  for (const day of days) {
    if (!peak || day.peakUsers > peak.peakUsers) peak = day;
    if (day.maxOveruse === null) daysPeakOnly += 1;
    if ((day.maxOveruse ?? 0) > 0 || (day.minutesOverSeats ?? 0) > 0) daysOverSeats += 1;
    minutesOverSeats += day.minutesOverSeats ?? 0;
    admissions += day.admissions ?? 0;
    maxOveruse = Math.max(maxOveruse, day.maxOveruse ?? 0);
  }
  const lastSeats = [...days].reverse().find((day) => day.seats !== null)?.seats;
  const peakUsers = peak?.peakUsers ?? 0;
  return {
    farm: farm.id,
    license: farm.license,
    licenseKey: farm.licenseKey ?? null,
    seats: lastSeats ?? farm.seats ?? null,
    peakUsers,
    peakDay: peak?.day ?? null,
    peakAt: peak?.peakAt ?? null,
    daysOverSeats,
    minutesOverSeats: Math.round(minutesOverSeats * 10) / 10,
    admissions,
    maxOveruse,
    daysRecorded: days.length,
    daysPeakOnly,
    daysCorrected: days.filter((day) => day.corrected).map((day) => day.day),
    billedUsers: farm.license === 'spla' ? peakUsers : null,
    ras,
    forecast,
  };
}

/**
 * Builds the report of `period` from the farms' day records (as {@link readHistory} returns them) and
 * RAS's figures by farm id (as {@link readRasFigures} returns them; a farm not in it has no broker)
 * and the forecasts by farm id (as {@link readForecasts} returns them; a farm not in it has none).
 */
export function buildReport(
  histories: readonly FarmHistory[],
  period: Period,
  nowMs: number,
  ras: ReadonlyMap<string, RasFigures> = new Map(),
  forecasts: ReadonlyMap<string, PeakForecast> = new Map(),
): Report {
  const farms = histories.map((history) =>
    farmReport(history.farm, history.days, ras.get(history.farm.id) ?? null, forecasts.get(history.farm.id) ?? null),
  );
  const byKey = new Map<string, LicenseKeyReport>();
  for (const farm of farms) {
    if (farm.licenseKey === null) continue;
    let entry = byKey.get(farm.licenseKey);
    if (!entry) {
      entry = { licenseKey: farm.licenseKey, farms: [], peakUsersSum: 0 };
      byKey.set(farm.licenseKey, entry);
    }
    entry.farms.push(farm.farm);
    entry.peakUsersSum += farm.peakUsers;
  }
  return {
    from: dayText(period.fromDay),
    to: dayText(period.toDay),
    generatedAt: new Date(nowMs).toISOString(),
    farms,
    licenseKeys: [...byKey.values()].sort((a, b) => (a.licenseKey < b.licenseKey ? -1 : 1)),
  };
}
