/**
 * The license report of a period (docs/design.md §4): per farm from its day records, and per license
 * key the farms activated with it, the sum of their period peaks and, for an SPLA key, the billed
 * figure beside each farm's daily peaks; per customer its farms and, when read, its distinct users
 * of each month. RAS's own figures stand beside a farm's that has a broker. A pure function of the
 * records and those figures, shared by `GET /api/v1/report` and `rasmon-collector report`.
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
  customer: string | null;
  /** Seats on the period's last recorded day, else as configured now; null for SPLA without a cap. */
  seats: number | null;
  /** Highest users in use on any day of the period; null when no day was recorded ("no data", never 0). */
  peakUsers: number | null;
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
  /** What SPLA bills for the farm: its period peak. Null for primary licenses and sublicenses, and without data. */
  billedUsers: number | null;
  /** RAS's own figures as of the broker's last answered poll; null for a farm without a broker. */
  ras: RasFigures | null;
  /**
   * As of the report's reading, not of the period: when the trend of the daily peak reaches the
   * seats (docs/design.md §4, "Forecast"); null when it says nothing.
   */
  forecast: PeakForecast | null;
}

/** One UTC day of a license key: each farm's daily peak (null: no record that day) and their sum. */
export interface KeyDay {
  day: string;
  peaks: Record<string, number | null>;
  total: number;
}

export interface LicenseKeyReport {
  licenseKey: string;
  farms: string[];
  /**
   * The sum, over the key's farms, of each farm's own period peak. Farms peak at different moments,
   * so this is at least the highest number of users the farms held at one moment together. Null
   * when none of its farms recorded a day of the period.
   */
  peakUsersSum: number | null;
  /** Whether a farm of the key is an SPLA farm (license: spla). */
  spla: boolean;
  /**
   * SPLA (a key with an SPLA farm): the billing-period figure as Parallels aggregates the daily
   * peaks of the farms activated with one key (docs/design.md §4, "Customers, SPLA and SAL"): the
   * sum, over the key's SPLA farms, of each farm's highest daily peak of the period. Null for a key
   * without an SPLA farm, and without data.
   */
  billedUsers: number | null;
  /** The day whose sum of the farms' daily peaks was highest, and that sum: the lower bound of any reading. */
  highestDayTotal: number | null;
  highestDay: string | null;
  /** Every day of the period on which a farm of the key has a record, oldest first. */
  days: KeyDay[];
}

/** The farms of one customer (`customer:` of the farms). */
export interface CustomerReport {
  customer: string;
  farms: string[];
}

/** Distinct users of one calendar month (UTC), per farm and per customer: the SAL count. */
export interface MonthUsersReport {
  month: string;
  /** null: no data (no user recorded and no day recorded in the report's period that month). */
  farms: Array<{ farm: string; customer: string | null; distinctUsers: number | null }>;
  /** A user on two farms of one customer counts once for the customer. */
  customers: Array<{ customer: string; farms: string[]; distinctUsers: number | null }>;
}

export interface Report {
  from: string;
  to: string;
  /** When the report was read (Redis time, ISO-8601). */
  generatedAt: string;
  farms: FarmReport[];
  licenseKeys: LicenseKeyReport[];
  customers: CustomerReport[];
  /** Present when asked for (`--distinct-users`, `?distinctUsers=true`). */
  distinctUsers?: MonthUsersReport[];
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
  const peakUsers = peak?.peakUsers ?? null;
  return {
    farm: farm.id,
    license: farm.license,
    licenseKey: farm.licenseKey ?? null,
    customer: farm.customer ?? null,
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

const sum = (values: Array<number | null>): number | null =>
  values.some((value) => value !== null) ? values.reduce<number>((total, value) => total + (value ?? 0), 0) : null;

/**
 * A license key's figures from its farms' reports and day records. The billed figure follows the
 * rule of Parallels' RAS SPLA guide, "Understanding Parallels RAS SPLA"
 * (https://docs.parallels.com/parallels-ras-spla-guide-19/introduction/understanding-parallels-ras-spla):
 * "Parallels Remote Application Server SPLA is licensed per peak number of concurrent users over a
 * billing period"; "At the end of each day, all farms report their respective peak number of
 * concurrent connections for that day", and at the period's end "the daily peak usage data for all
 * farms is aggregated". The guide's sentence on how is not in the copy we could read: this reads it
 * as each farm's highest daily peak of the period, summed over the key's farms, which the console's
 * "Current Period Usage: ... The combined usage for all Farms activated with the same license key"
 * supports (docs/design.md §4, "Customers, SPLA and SAL", argues it); the other reading, the highest
 * daily sum, is never more and is shown beside it.
 */
function keyReport(
  licenseKey: string,
  farms: ReadonlyArray<{ report: FarmReport; days: readonly DayRecord[] }>,
): LicenseKeyReport {
  const byDay = new Map<string, Record<string, number | null>>();
  for (const { report, days } of farms) {
    for (const day of days) {
      let peaks = byDay.get(day.day);
      if (!peaks) {
        peaks = Object.fromEntries(farms.map((farm) => [farm.report.farm, null]));
        byDay.set(day.day, peaks);
      }
      peaks[report.farm] = day.peakUsers;
    }
  }
  const days = [...byDay.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([day, peaks]) => ({ day, peaks, total: sum(Object.values(peaks)) ?? 0 }));
  let highest: KeyDay | undefined;
  for (const day of days) if (!highest || day.total > highest.total) highest = day;
  const spla = farms.filter(({ report }) => report.license === 'spla');
  return {
    licenseKey,
    farms: farms.map(({ report }) => report.farm),
    peakUsersSum: sum(farms.map(({ report }) => report.peakUsers)),
    spla: spla.length > 0,
    billedUsers: spla.length === 0 ? null : sum(spla.map(({ report }) => report.peakUsers)),
    highestDayTotal: highest?.total ?? null,
    highestDay: highest?.day ?? null,
    days,
  };
}

/**
 * The farms a report narrowed to some farms (`--customer`, `--key`) must read: those farms and every
 * other farm sharing a license key with one of them, so that a key's figures (an SPLA key's billed
 * users) stay the whole key's, as Parallels bills it, when one customer of a shared key is reported.
 * {@link narrowReport} then leaves the other farms' rows out.
 */
export function farmsToRead(all: readonly FarmConfig[], selected: readonly FarmConfig[]): FarmConfig[] {
  const keys = new Set(selected.flatMap((farm) => (farm.licenseKey === undefined ? [] : [farm.licenseKey])));
  const ids = new Set(selected.map((farm) => farm.id));
  return all.filter((farm) => ids.has(farm.id) || (farm.licenseKey !== undefined && keys.has(farm.licenseKey)));
}

/** A report built from {@link farmsToRead}, showing only the selected farms, their customers and their keys (whole). */
export function narrowReport(report: Report, selected: readonly FarmConfig[]): Report {
  const ids = new Set(selected.map((farm) => farm.id));
  const keys = new Set(selected.flatMap((farm) => (farm.licenseKey === undefined ? [] : [farm.licenseKey])));
  return {
    ...report,
    farms: report.farms.filter((farm) => ids.has(farm.farm)),
    licenseKeys: report.licenseKeys.filter((key) => keys.has(key.licenseKey)),
    customers: report.customers
      .map((customer) => ({ ...customer, farms: customer.farms.filter((farm) => ids.has(farm)) }))
      .filter((customer) => customer.farms.length > 0),
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
  distinctUsers?: MonthUsersReport[],
): Report {
  const farms = histories.map((history) => ({
    report: farmReport(
      history.farm,
      history.days,
      ras.get(history.farm.id) ?? null,
      forecasts.get(history.farm.id) ?? null,
    ),
    days: history.days,
  }));
  const group = (name: (farm: FarmReport) => string | null) => {
    const groups = new Map<string, typeof farms>();
    for (const farm of farms) {
      const key = name(farm.report);
      if (key === null) continue;
      groups.set(key, [...(groups.get(key) ?? []), farm]);
    }
    return [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  };
  return {
    from: dayText(period.fromDay),
    to: dayText(period.toDay),
    generatedAt: new Date(nowMs).toISOString(),
    farms: farms.map(({ report }) => report),
    licenseKeys: group((farm) => farm.licenseKey).map(([key, members]) => keyReport(key, members)),
    customers: group((farm) => farm.customer).map(([customer, members]) => ({
      customer,
      farms: members.map(({ report }) => report.farm),
    })),
    ...(distinctUsers === undefined ? {} : { distinctUsers }),
  };
}
