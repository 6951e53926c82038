import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseConfig } from '../src/config/config.js';
import { parseStoredDay } from '../src/report/day-records.js';
import { buildReport } from '../src/report/report.js';
import { reportCsv } from '../src/report/csv.js';
import { reportTable } from '../src/report-cli.js';
import { rasFigures } from '../src/report/ras-figures.js';
import type { BrokerLicense, BrokerState } from '../src/engine/farm-reader.js';
import {
  PeriodError,
  dayText,
  lastFullMonth,
  monthToDate,
  parseDay,
  parsePeriod,
} from '../src/report/report-period.js';

const DAY_MS = 86_400_000;
const day = (text: string) => parseDay(text)!;

describe('report periods', () => {
  it('accepts only real calendar dates written YYYY-MM-DD', () => {
    expect(parseDay('2026-11-30')).toBe(Date.UTC(2026, 10, 30) / DAY_MS);
    expect(parseDay('2028-02-29')).toBeDefined();
    for (const bad of ['2026-02-29', '2026-02-30', '2026-13-01', '2026-1-01', '26-01-01', '2026-01-01T00:00:00Z', '']) {
      expect(parseDay(bad), bad).toBeUndefined();
    }
  });

  it('accepts every date from 0001-01-01 to 9999-12-31, years 0001-0099 as written', () => {
    expect(dayText(parseDay('0001-01-01')!)).toBe('0001-01-01');
    expect(dayText(parseDay('0099-12-31')!)).toBe('0099-12-31');
    expect(dayText(parseDay('9999-12-31')!)).toBe('9999-12-31');
    // Year 48 is a leap year and 100 is not, in the proleptic Gregorian calendar ISO-8601 uses.
    expect(parseDay('0048-02-29')).toBeDefined();
    expect(parseDay('0100-02-29')).toBeUndefined();
    for (const bad of ['0000-01-01', '0000-12-31', '10000-01-01', '-0001-01-01'])
      expect(parseDay(bad), bad).toBeUndefined();
    const first = parseDay('0001-01-01')!;
    const last = parseDay('9999-12-31')!;
    fc.assert(
      fc.property(fc.integer({ min: first, max: last }), (dayNumber) => parseDay(dayText(dayNumber)) === dayNumber),
      { numRuns: 2000 },
    );
  });

  it('names the range of dates it accepts when it refuses one', () => {
    expect(() => parsePeriod('0000-01-01', '2026-01-01', { fromDay: 0, toDay: 0 })).toThrow(
      'from must be a date YYYY-MM-DD (UTC) from 0001-01-01 to 9999-12-31, got "0000-01-01"',
    );
    expect(parsePeriod('0001-01-01', '0001-12-31', { fromDay: 0, toDay: 0 })).toEqual({
      fromDay: parseDay('0001-01-01'),
      toDay: parseDay('0001-12-31'),
    });
  });

  it('the month to date and the last full month at the first and last instants of months and years', () => {
    const at = (text: string) => Date.parse(text);
    const period = ({ fromDay, toDay }: { fromDay: number; toDay: number }) => [dayText(fromDay), dayText(toDay)];
    expect(period(monthToDate(at('2027-12-31T23:59:59.999Z')))).toEqual(['2027-12-01', '2027-12-31']);
    expect(period(monthToDate(at('2028-01-01T00:00:00.000Z')))).toEqual(['2028-01-01', '2028-01-01']);
    expect(period(monthToDate(at('2028-02-29T12:00:00Z')))).toEqual(['2028-02-01', '2028-02-29']);
    expect(period(lastFullMonth(at('2028-01-01T00:00:00.000Z')))).toEqual(['2027-12-01', '2027-12-31']);
    expect(period(lastFullMonth(at('2028-03-31T23:59:59.999Z')))).toEqual(['2028-02-01', '2028-02-29']);
    expect(period(lastFullMonth(at('0001-02-01T00:00:00Z')))).toEqual(['0001-01-01', '0001-01-31']);
    expect(period(lastFullMonth(at('0050-01-15T00:00:00Z')))).toEqual(['0049-12-01', '0049-12-31']);
  });

  it('defaults to the last full calendar month, across a new year', () => {
    const january = lastFullMonth(Date.UTC(2027, 0, 15, 12));
    expect(january).toEqual({ fromDay: day('2026-12-01'), toDay: day('2026-12-31') });
    const march = lastFullMonth(Date.UTC(2028, 2, 1, 0, 0, 1));
    expect(march).toEqual({ fromDay: day('2028-02-01'), toDay: day('2028-02-29') });
  });

  it('refuses a reversed or half-given period', () => {
    const fallback = { fromDay: 0, toDay: 0 };
    expect(() => parsePeriod('2026-02-02', '2026-02-01', fallback)).toThrow(PeriodError);
    expect(() => parsePeriod(undefined, '2026-02-01', fallback)).toThrow('from and to go together');
    expect(parsePeriod('2026-02-01', '2026-02-01', fallback)).toEqual({
      fromDay: day('2026-02-01'),
      toDay: day('2026-02-01'),
    });
  });
});

describe('day records', () => {
  it('reads a finished record, and a bare peak from before records', () => {
    expect(parseStoredDay(day('2026-11-02'), '12,1793000000000,10,2,5,90000')).toEqual({
      day: '2026-11-02',
      peakUsers: 12,
      peakAt: new Date(1793000000000).toISOString(),
      seats: 10,
      maxOveruse: 2,
      admissions: 5,
      minutesOverSeats: 1.5,
    });
    expect(parseStoredDay(day('2026-11-02'), '7')).toMatchObject({
      peakUsers: 7,
      seats: null,
      admissions: null,
      minutesOverSeats: null,
    });
    expect(parseStoredDay(day('2026-11-03'), '12,,,,,')).toMatchObject({ peakUsers: 12, peakAt: null, seats: null });
  });
});

describe('report', () => {
  const config = parseConfig(
    {
      farms: [
        {
          id: 'a',
          seats: 10,
          license: 'primary',
          licenseKey: 'K',
          expires: '2027-01-01T00:00:00Z',
          agentTokensSha256: [],
        },
        {
          id: 'b',
          seats: 5,
          license: 'sublicense',
          licenseKey: 'K',
          expires: '2027-01-01T00:00:00Z',
          agentTokensSha256: [],
        },
        { id: 's', license: 'spla', expires: '2027-01-01T00:00:00Z', agentTokensSha256: [] },
      ],
    },
    'test',
  );
  const record = (
    d: string,
    peakUsers: number,
    seats: number | null,
    maxOveruse: number,
    minutes: number,
    admissions: number,
  ) => ({
    day: d,
    peakUsers,
    peakAt: `${d}T10:00:00.000Z`,
    seats,
    maxOveruse,
    admissions,
    minutesOverSeats: minutes,
  });

  it('sums a period per farm and adds the period peaks of the farms sharing a license key', () => {
    const [a, b, s] = config.farms;
    const report = buildReport(
      [
        {
          farm: a!,
          days: [
            record('2026-11-01', 8, 10, 0, 0, 0),
            record('2026-11-02', 13, 10, 3, 12.5, 4),
            record('2026-11-03', 13, 12, 1, 2, 1),
          ],
        },
        {
          farm: b!,
          days: [
            record('2026-11-01', 6, 5, 1, 0.1, 1),
            { ...record('2026-10-31', 9, null, 0, 0, 0), maxOveruse: null, minutesOverSeats: null, admissions: null },
          ],
        },
        { farm: s!, days: [record('2026-11-01', 40, null, 0, 0, 0), record('2026-11-02', 44, null, 0, 0, 0)] },
      ],
      { fromDay: day('2026-10-31'), toDay: day('2026-11-30') },
      Date.UTC(2026, 11, 1),
    );
    expect(report.farms[0]).toMatchObject({
      farm: 'a',
      seats: 12,
      peakUsers: 13,
      peakDay: '2026-11-02',
      daysOverSeats: 2,
      minutesOverSeats: 14.5,
      admissions: 5,
      maxOveruse: 3,
      billedUsers: null,
    });
    expect(report.farms[1]).toMatchObject({
      farm: 'b',
      seats: 5,
      peakUsers: 9,
      peakDay: '2026-10-31',
      daysPeakOnly: 1,
      daysRecorded: 2,
    });
    expect(report.farms[2]).toMatchObject({ farm: 's', seats: null, peakUsers: 44, billedUsers: 44, maxOveruse: 0 });
    expect(report.licenseKeys).toEqual([{ licenseKey: 'K', farms: ['a', 'b'], peakUsersSum: 22 }]);
  });

  it("sets RAS's figures beside a farm with a broker, as of its last answer, and null beside one without", () => {
    const license: BrokerLicense = {
      users: 3,
      seats: 20,
      peakUsers: 9,
      expiryDate: '2027-12-31',
      graceState: undefined,
      graceDaysLeft: undefined,
      needsAttention: false,
      statusMessage: undefined,
      alertMessage: undefined,
      type: 'spla',
      licenseType: undefined,
      currPeriodUsage: 7,
      billingPeriodStart: '2026-11-01T00:00',
      billingPeriodEnd: undefined,
    };
    const broker: BrokerState = {
      up: false,
      lastPollAt: Date.UTC(2026, 11, 1, 9),
      lastOkAt: Date.UTC(2026, 11, 1, 8, 30),
      reason: 'unreachable',
      message: undefined,
      license,
      sessions: undefined,
      driftUsers: 0,
    };
    const figures = rasFigures(broker)!;
    // A broker not answering now still reports what it last said, and when.
    expect(figures).toEqual({
      users: 3,
      peakUsers: 9,
      seats: 20,
      currPeriodUsage: 7,
      billingPeriodStart: '2026-11-01T00:00',
      at: '2026-12-01T08:30:00.000Z',
    });
    expect(rasFigures({ ...broker, license: undefined, lastOkAt: undefined })).toEqual({
      users: null,
      peakUsers: null,
      seats: null,
      at: null,
    });
    expect(rasFigures({ ...broker, lastOkAt: 9e15 })!.at).toBeNull();
    expect(rasFigures(undefined)).toBeNull();

    const [a, b] = config.farms;
    const report = buildReport(
      [
        { farm: a!, days: [record('2026-11-01', 8, 10, 0, 0, 0)] },
        { farm: b!, days: [] },
      ],
      { fromDay: day('2026-11-01'), toDay: day('2026-11-30') },
      Date.UTC(2026, 11, 1),
      new Map([['a', figures]]),
    );
    expect(report.farms.map((farm) => farm.ras)).toEqual([figures, null]);
  });
  it('sets the forecast beside each farm that has one, as of the reading, in JSON, CSV and the table', () => {
    const [a, b] = config.farms;
    const histories = [
      { farm: a!, days: [record('2026-11-01', 8, 10, 0, 0, 0)] },
      { farm: b!, days: [record('2026-11-01', 4, 5, 0, 0, 0)] },
    ];
    const period = { fromDay: day('2026-11-01'), toDay: day('2026-11-30') };
    const forecast = { fullInDays: 9, fullBy: '2026-12-10' };
    const report = buildReport(histories, period, Date.UTC(2026, 11, 1), new Map(), new Map([['a', forecast]]));
    expect(report.farms.map((farm) => farm.forecast)).toEqual([forecast, null]);
    // No field of these rows is quoted: a split reads them.
    const [header, ...lines] = reportCsv(report)
      .trimEnd()
      .split('\r\n')
      .map((line) => line.split(','));
    const rows = lines.map((line) => Object.fromEntries(header!.map((name, i) => [name, line[i]])));
    expect(rows.map((row) => [row.name, row.forecastFullInDays, row.forecastFullBy])).toEqual([
      ['a', '9', '2026-12-10'],
      ['b', '', ''],
      ['K', '', ''],
    ]);
    const table = reportTable(report).split('\n');
    expect(table[2]).toMatch(/\bfull in days\s+full by$/);
    expect(table[4]).toMatch(/^a\s.*\s9\s+2026-12-10$/);
    expect(table[5]).toMatch(/^b\s.*\s-\s+-$/);
    // Without a forecast anywhere the table has no such columns.
    expect(reportTable(buildReport(histories, period, Date.UTC(2026, 11, 1)))).not.toContain('full by');
  });
});
