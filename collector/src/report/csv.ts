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
] as const;

/**
 * One row per farm (`row` = farm), then one per license key (`row` = licenseKey, `farms` its farms
 * separated by spaces, `peakUsers` the sum of their period peaks). The `ras*` columns hold RAS's
 * figures as of the broker's last answered poll, empty for a farm without a broker; the `forecast*`
 * columns the forecast as of the report's reading, empty where there is none.
 */
export function reportCsv(report: Report): string {
  const period = { from: report.from, to: report.to };
  const farms = report.farms.map(({ ras, daysCorrected, forecast, ...farm }) => ({
    ...period,
    row: 'farm',
    name: farm.farm,
    farms: farm.farm,
    ...farm,
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
    peakUsers: key.peakUsersSum,
  }));
  return stringify([...farms, ...keys], { ...OPTIONS, columns: [...REPORT_COLUMNS] });
}
