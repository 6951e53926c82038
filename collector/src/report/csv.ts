/**
 * The CSV forms of the history and the report: RFC 4180 (CRLF line ends, a header row, fields with
 * commas, quotes or line breaks quoted), one table a person opens in a spreadsheet. Written by
 * csv-stringify, a small dependency-free writer, rather than by hand.
 */
import { stringify } from 'csv-stringify/sync';
import type { FarmHistory } from './day-records.js';
import type { Report } from './report.js';

const OPTIONS = { header: true, record_delimiter: 'windows', quote_record_delimiter: true } as const;

export const HISTORY_COLUMNS = [
  'farm',
  'day',
  'peakUsers',
  'peakAt',
  'seats',
  'maxOveruse',
  'admissions',
  'minutesOverSeats',
  'correctedBy',
  'correctedReason',
] as const;

/** One row per farm and day; a day `rasmon-collector correct` rewrote says by whom and why. */
export function historyCsv(histories: readonly FarmHistory[]): string {
  const rows = histories.flatMap((history) =>
    history.days.map(({ corrected, ...day }) => ({
      farm: history.farm.id,
      ...day,
      correctedBy: corrected?.by,
      correctedReason: corrected?.reason,
    })),
  );
  return stringify(rows, { ...OPTIONS, columns: [...HISTORY_COLUMNS] });
}

export const REPORT_COLUMNS = [
  'from',
  'to',
  'row',
  'name',
  'license',
  'licenseKey',
  'farms',
  'seats',
  'peakUsers',
  'peakDay',
  'peakAt',
  'billedUsers',
  'daysOverSeats',
  'minutesOverSeats',
  'admissions',
  'maxOveruse',
  'daysRecorded',
  'daysPeakOnly',
  'rasUsers',
  'rasPeakUsers',
  'rasSeats',
  'rasCurrPeriodUsage',
  'rasAt',
  'daysCorrected',
  'forecastFullInDays',
  'forecastFullBy',
  'customer',
  'day',
  'highestDayTotal',
  'month',
  'distinctUsers',
] as const;

/** What a cell of a figure says when there is none: never a 0 that reads as "nobody". */
export const NO_DATA = 'no data';
const figure = (value: number | null) => (value === null ? NO_DATA : value);

/**
 * One row per farm (`row` = farm), then one per license key (`row` = licenseKey, `farms` its farms
 * separated by spaces, `peakUsers` the sum of their period peaks, `billedUsers` an SPLA key's billed
 * figure, `highestDayTotal` on `day` the highest sum of the farms' daily peaks), then for each key
 * each farm's daily peaks (`row` = keyDay, `name` the farm, `day`, `peakUsers`), then, when the
 * report has them, the distinct users of each month per farm (`row` = farmMonth) and per customer
 * (`row` = customerMonth). The `ras*` columns hold RAS's figures as of the broker's last answered
 * poll, empty for a farm without a broker; the `forecast*` columns the forecast as of the report's
 * reading, empty where there is none. A figure without data says "no data".
 */
export function reportCsv(report: Report): string {
  const period = { from: report.from, to: report.to };
  const farms = report.farms.map(({ ras, daysCorrected, forecast, ...farm }) => ({
    ...period,
    row: 'farm',
    name: farm.farm,
    farms: farm.farm,
    ...farm,
    peakUsers: figure(farm.peakUsers),
    daysCorrected: daysCorrected.join(' '),
    rasUsers: ras?.users,
    rasPeakUsers: ras?.peakUsers,
    rasSeats: ras?.seats,
    rasCurrPeriodUsage: ras?.currPeriodUsage,
    rasAt: ras?.at,
    forecastFullInDays: forecast?.fullInDays,
    forecastFullBy: forecast?.fullBy,
  }));
  const keys = report.licenseKeys.map((key) => ({
    ...period,
    row: 'licenseKey',
    name: key.licenseKey,
    licenseKey: key.licenseKey,
    farms: key.farms.join(' '),
    peakUsers: figure(key.peakUsersSum),
    billedUsers: key.spla ? figure(key.billedUsers) : undefined,
    highestDayTotal: figure(key.highestDayTotal),
    day: key.highestDay,
  }));
  const keyDays = report.licenseKeys.flatMap((key) =>
    key.days.flatMap((day) =>
      Object.entries(day.peaks).map(([farm, peak]) => ({
        ...period,
        row: 'keyDay',
        name: farm,
        licenseKey: key.licenseKey,
        day: day.day,
        peakUsers: figure(peak),
      })),
    ),
  );
  const months = (report.distinctUsers ?? []).flatMap((month) => [
    ...month.farms.map((farm) => ({
      ...period,
      row: 'farmMonth',
      name: farm.farm,
      farms: farm.farm,
      customer: farm.customer,
      month: month.month,
      distinctUsers: figure(farm.distinctUsers),
    })),
    ...month.customers.map((customer) => ({
      ...period,
      row: 'customerMonth',
      name: customer.customer,
      farms: customer.farms.join(' '),
      customer: customer.customer,
      month: month.month,
      distinctUsers: figure(customer.distinctUsers),
    })),
  ]);
  return stringify([...farms, ...keys, ...keyDays, ...months], { ...OPTIONS, columns: [...REPORT_COLUMNS] });
}
