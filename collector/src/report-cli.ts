/**
 * `rasmon-collector report --config F [--from D --to D] [--customer C] [--key K] [--distinct-users]
 * [--format table|csv|json]`: reads the day records from Redis, prints the report of the period and
 * exits, for a monthly cron mail: the invoice check of each license key and, with
 * `--distinct-users`, the SAL count of each customer. The period defaults to the last full calendar
 * month (UTC, by the Redis clock).
 */
import { RasmonError } from '@rasmon/protocol/kit';
import { parseFlags } from './cli-flags.js';
import { ConfigError, type CollectorConfig } from './config/config.js';
import { loadConfig } from './config/config-loader.js';
import { NO_DATA, reportCsv } from './report/csv.js';
import { FarmReader } from './engine/farm-reader.js';
import { createRedis } from './engine/redis-client.js';
import { RedisKeys } from './engine/redis-schema.js';
import { defineScripts } from './engine/scripts.js';
import { readReport } from './report/read-report.js';
import type { Report } from './report/report.js';
import { PeriodError, lastFullMonth, parsePeriod, type Period } from './report/report-period.js';
import { FarmSelectionError, selectFarms } from './report/select-farms.js';

export const REPORT_USAGE = `Usage: rasmon-collector report --config FILE [--from YYYY-MM-DD --to YYYY-MM-DD]
       [--customer NAME] [--key LABEL] [--distinct-users] [--format table|csv|json]

Prints the license report of a period (UTC days, both included; default: the last full calendar month)
read from the collector's Redis: per farm its seats, period peak and its day, days and minutes over
seats, overuse admissions and highest overuse, when the trend of its daily peak reaches its seats (as
of now; shown when a farm has such a forecast), and for a farm with a RAS broker RAS's own users, peak
and seats as of its last answered poll; per license key its farms, the sum of their peaks and, for an
SPLA key, the billed figure beside each farm's daily peaks (the invoice check). --distinct-users adds
the distinct users of each calendar month per farm and per customer (the SAL count). --customer and
--key keep the farms of one customer or one license key. A figure without data says "no data".`;

const FORMATS = ['table', 'csv', 'json'] as const;
type Format = (typeof FORMATS)[number];

/** A problem with the command line: one line, exit 2. */
class UsageError extends RasmonError {
  constructor(message: string) {
    super('RASMON_USAGE', message);
    this.name = 'UsageError';
  }
}

const CONNECT_TIMEOUT_MS = 10_000;

function cell(value: string | number | null): string {
  return value === null ? '-' : String(value);
}

/** A figure as the table shows it: "no data" rather than a 0 that reads as nobody. */
const figure = (value: number | null): string | number => (value === null ? NO_DATA : value);

/** A plain text table: columns padded to their widest cell, numbers aligned right. */
function table(header: string[], rows: Array<Array<string | number | null>>): string {
  const cells = rows.map((row) => row.map(cell));
  const widths = header.map((title, index) => Math.max(title.length, ...cells.map((row) => row[index]!.length)));
  const numeric = header.map((_, index) =>
    rows.every((row) => typeof row[index] === 'number' || row[index] === null || row[index] === NO_DATA),
  );
  const line = (row: string[]) =>
    row
      .map((text, index) => (numeric[index] ? text.padStart(widths[index]!) : text.padEnd(widths[index]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...cells.map(line)].join('\n');
}

/** A time as a mail reads it: `YYYY-MM-DD HH:MM UTC`. */
function utcMinute(iso: string | null): string | null {
  return iso === null ? null : `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}

/**
 * The report as text for a mail: the period, a table of farms, and one of license keys if any. The
 * figures of now come last: the forecast, when a farm has one, and RAS's, when a farm has a broker.
 */
export function reportTable(report: Report): string {
  const withRas = report.farms.some((farm) => farm.ras !== null);
  const withForecast = report.farms.some((farm) => farm.forecast !== null);
  const farms = table(
    [
      'farm',
      'license',
      'license key',
      'seats',
      'peak',
      'peak day',
      'billed',
      'days over',
      'minutes over',
      'admissions',
      'max overuse',
      ...(withForecast ? ['full in days', 'full by'] : []),
      ...(withRas ? ['ras users', 'ras peak', 'ras seats', 'ras as of'] : []),
    ],
    report.farms.map((farm) => [
      farm.farm,
      farm.license ?? null,
      farm.licenseKey,
      farm.seats,
      figure(farm.peakUsers),
      farm.peakDay,
      farm.license === 'spla' ? figure(farm.billedUsers) : null,
      // A farm without a recorded day has no figures: "-" rather than zeros that read as measured.
      ...(farm.daysRecorded === 0
        ? [null, null, null, null]
        : [farm.daysOverSeats, farm.minutesOverSeats, farm.admissions, farm.maxOveruse]),
      ...(withForecast ? [farm.forecast?.fullInDays ?? null, farm.forecast?.fullBy ?? null] : []),
      ...(withRas
        ? [
            farm.ras?.users ?? null,
            farm.ras?.peakUsers ?? null,
            farm.ras?.seats ?? null,
            utcMinute(farm.ras?.at ?? null),
          ]
        : []),
    ]),
  );
  const out = [`License report ${report.from} to ${report.to} (UTC), read ${report.generatedAt}`, '', farms];
  if (report.farms.length === 0) out.push(NO_DATA);
  if (report.licenseKeys.length > 0) {
    out.push(
      '',
      table(
        ['license key', 'farms', 'sum of farm peaks', 'spla billed'],
        report.licenseKeys.map((key) => [
          key.licenseKey,
          key.farms.join(' '),
          figure(key.peakUsersSum),
          key.spla ? figure(key.billedUsers) : null,
        ]),
      ),
    );
  }
  for (const key of report.licenseKeys.filter((entry) => entry.spla)) out.push('', invoiceCheck(key));
  if (report.distinctUsers) out.push('', distinctUsersTable(report));
  return `${out.join('\n')}\n`;
}

/**
 * An SPLA key's invoice check: each farm's daily peaks, the day's sum, each farm's period peak, and
 * the billed figure (the sum of those period peaks, Parallels' aggregation: docs/design.md §4).
 */
function invoiceCheck(key: Report['licenseKeys'][number]): string {
  const title = `Invoice check, SPLA license key ${key.licenseKey}`;
  if (key.days.length === 0) return `${title}: ${NO_DATA}`;
  const grid = table(
    ['day', ...key.farms, 'sum'],
    [
      ...key.days.map((day) => [day.day, ...key.farms.map((farm) => day.peaks[farm] ?? null), day.total]),
      [
        'period peak',
        ...key.farms.map((farm) => {
          const peaks = key.days
            .map((day) => day.peaks[farm])
            .filter((peak): peak is number => typeof peak === 'number');
          return peaks.length === 0 ? NO_DATA : Math.max(...peaks);
        }),
        null,
      ],
    ],
  );
  return [
    `${title}`,
    grid,
    `billed users (each farm's highest daily peak, summed over the key's SPLA farms): ${figure(key.billedUsers)}`,
    `highest sum of one day: ${figure(key.highestDayTotal)}${key.highestDay ? ` on ${key.highestDay}` : ''}`,
  ].join('\n');
}

/** The distinct users of each month, per customer and per farm (the SAL count). */
function distinctUsersTable(report: Report): string {
  const months = report.distinctUsers ?? [];
  const rows: Array<Array<string | number | null>> = months.flatMap((month) => [
    ...month.customers.map((customer) => [
      month.month,
      customer.customer,
      customer.farms.join(' '),
      figure(customer.distinctUsers),
    ]),
    ...month.farms.map((farm) => [month.month, farm.customer, farm.farm, figure(farm.distinctUsers)]),
  ]);
  return [
    'Distinct users per calendar month (UTC), per customer, then per farm',
    table(['month', 'customer', 'farms', 'distinct users'], rows),
  ].join('\n');
}

interface ReportArgs {
  config: string | undefined;
  from?: string;
  to?: string;
  customer?: string;
  key?: string;
  distinctUsers: boolean;
  format: Format;
}

function parse(argv: string[]): ReportArgs {
  const values = parseFlags(
    argv,
    {
      config: { type: 'string', short: 'c' },
      from: { type: 'string' },
      to: { type: 'string' },
      customer: { type: 'string' },
      key: { type: 'string' },
      'distinct-users': { type: 'boolean' },
      format: { type: 'string' },
    },
    (message) => {
      throw new UsageError(message);
    },
  );
  const format = values.format ?? 'table';
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`--format must be one of ${FORMATS.join(', ')}, got ${JSON.stringify(format.slice(0, 40))}`);
  }
  return {
    config: values.config,
    ...(values.from === undefined ? {} : { from: values.from }),
    ...(values.to === undefined ? {} : { to: values.to }),
    ...(values.customer === undefined ? {} : { customer: values.customer }),
    ...(values.key === undefined ? {} : { key: values.key }),
    distinctUsers: values['distinct-users'] === true,
    format: format as Format,
  };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs the report command; returns the exit code (0 printed, 1 Redis failed, 2 bad command line or
 * config). Output goes to `out`, errors as one line to `err`.
 */
export async function runReport(
  argv: string[],
  io: { out: (text: string) => void; err: (text: string) => void; env: NodeJS.ProcessEnv },
): Promise<number> {
  let args: ReportArgs;
  let config: CollectorConfig;
  let farms: CollectorConfig['farms'];
  const names = { from: '--from', to: '--to' };
  try {
    args = parse(argv);
    // Checked before Redis is asked anything: a bad date never waits on a connection.
    parsePeriod(args.from, args.to, lastFullMonth(Date.now()), names);
    config = loadConfig({ ...(args.config ? { path: args.config } : {}), env: io.env });
    farms = selectFarms(config.farms, { customer: args.customer, key: args.key });
  } catch (err) {
    if (err instanceof FarmSelectionError) {
      io.err(`rasmon-collector report: --${err.filter}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof UsageError || err instanceof PeriodError || err instanceof ConfigError) {
      io.err(`rasmon-collector report: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const redis = createRedis(config.redis);
  // The day still open is read by a script (readOpenDay).
  defineScripts(redis);
  redis.on('error', () => undefined);
  try {
    await withTimeout(redis.connect(), CONNECT_TIMEOUT_MS, 'Redis');
    const [seconds, micros] = await redis.time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const period: Period = parsePeriod(args.from, args.to, lastFullMonth(now), names);
    const keys = new RedisKeys(config.redis.prefix);
    const report = await readReport(
      { redis, keys, reader: new FarmReader(redis, keys) },
      config.farms,
      farms,
      period,
      args.distinctUsers,
      config.distinctUsers.retentionMonths,
    );
    if (args.format === 'json') io.out(`${JSON.stringify(report, null, 2)}\n`);
    else if (args.format === 'csv') io.out(reportCsv(report));
    else io.out(reportTable(report));
    return 0;
  } catch (err) {
    io.err(`rasmon-collector report: cannot read Redis: ${(err as Error).message.split('\n')[0]}\n`);
    return 1;
  } finally {
    redis.disconnect();
  }
}
