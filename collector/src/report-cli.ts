/**
 * `rasmon-collector report --config F [--from D --to D] [--format table|csv|json]`: reads the day
 * records from Redis, prints the report of the period and exits, for a monthly cron mail. The
 * period defaults to the last full calendar month (UTC, by the Redis clock).
 */
import { RasmonError } from '@rasmon/protocol/kit';
import { parseFlags } from './cli-flags.js';
import { ConfigError, type CollectorConfig } from './config/config.js';
import { loadConfig } from './config/config-loader.js';
import { reportCsv } from './report/csv.js';
import { readHistory } from './report/day-records.js';
import { FarmReader } from './engine/farm-reader.js';
import { createRedis } from './engine/redis-client.js';
import { RedisKeys } from './engine/redis-schema.js';
import { defineScripts } from './engine/scripts.js';
import { readRasFigures } from './report/ras-figures.js';
import { buildReport, readForecasts, type Report } from './report/report.js';
import { PeriodError, lastFullMonth, parsePeriod, type Period } from './report/report-period.js';

export const REPORT_USAGE = `Usage: rasmon-collector report --config FILE [--from YYYY-MM-DD --to YYYY-MM-DD] [--format table|csv|json]

Prints the license report of a period (UTC days, both included; default: the last full calendar month)
read from the collector's Redis: per farm its seats, period peak and its day, days and minutes over
seats, overuse admissions and highest overuse, when the trend of its daily peak reaches its seats (as
of now; shown when a farm has such a forecast), and for a farm with a RAS broker RAS's own users, peak
and seats as of its last answered poll; per license key its farms and the sum of their peaks.`;

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

/** A plain text table: columns padded to their widest cell, numbers aligned right. */
function table(header: string[], rows: Array<Array<string | number | null>>): string {
  const cells = rows.map((row) => row.map(cell));
  const widths = header.map((title, index) => Math.max(title.length, ...cells.map((row) => row[index]!.length)));
  const numeric = header.map((_, index) => rows.every((row) => typeof row[index] === 'number' || row[index] === null));
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
      farm.peakUsers,
      farm.peakDay,
      farm.billedUsers,
      farm.daysOverSeats,
      farm.minutesOverSeats,
      farm.admissions,
      farm.maxOveruse,
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
  if (report.licenseKeys.length > 0) {
    out.push(
      '',
      table(
        ['license key', 'farms', 'sum of farm peaks'],
        report.licenseKeys.map((key) => [key.licenseKey, key.farms.join(' '), key.peakUsersSum]),
      ),
    );
  }
  return `${out.join('\n')}\n`;
}

function parse(argv: string[]): { config: string | undefined; from?: string; to?: string; format: Format } {
  const values = parseFlags(
    argv,
    {
      config: { type: 'string', short: 'c' },
      from: { type: 'string' },
      to: { type: 'string' },
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
  let args: ReturnType<typeof parse>;
  let config: CollectorConfig;
  const names = { from: '--from', to: '--to' };
  try {
    args = parse(argv);
    // Checked before Redis is asked anything: a bad date never waits on a connection.
    parsePeriod(args.from, args.to, lastFullMonth(Date.now()), names);
    config = loadConfig({ ...(args.config ? { path: args.config } : {}), env: io.env });
  } catch (err) {
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
    const read = await readHistory(redis, keys, config.farms, period);
    const reader = new FarmReader(redis, keys);
    const ras = await readRasFigures(reader, config.farms);
    const report = buildReport(read.farms, period, read.now, ras, await readForecasts(reader, config.farms));
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
