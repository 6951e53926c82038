/**
 * `GET /api/v1/farms/{farm}/history?from=&to=` (day records) and `GET /api/v1/report?from=&to=` (per farm,
 * per license key and per customer; `customer=`, `key=` keep one; `distinctUsers=true` adds the SAL
 * counts), as JSON or as CSV with `format=csv` or `Accept: text/csv` (docs/design.md §4); and
 * `GET /api/v1/distinct-users/users?month=YYYY-MM[&customer=]`, the user list behind a month's counts
 * as CSV, served only when `api.tokensSha256` is configured (so only to a bearer of one of them).
 * Called by the API after its method and token checks.
 */
import type { FarmDirectory } from '../config/farm-directory.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Cluster, Redis } from 'ioredis';
import { DAY_MS, NAME_PATTERN } from '@rasmon/protocol';
import type { FarmConfig } from '../config/config.js';
import { historyCsv, reportCsv } from '../report/csv.js';
import { readHistory } from '../report/day-records.js';
import type { FarmReader } from '../engine/farm-reader.js';
import type { RedisKeys } from '../engine/redis-schema.js';
import { MONTH_PATTERN, NoMonthDataError, userListCsv, type UserList } from '../report/distinct-users.js';
import { readReport } from '../report/read-report.js';
import { PeriodError, dayText, lastFullMonth, parsePeriod, type Period } from '../report/report-period.js';
import { FarmSelectionError, selectFarms } from '../report/select-farms.js';

/** How many days the history lists when no period is given: every day the farm keeps (docs/design.md §2 rule 7). */
export const HISTORY_DEFAULT_DAYS = 450;

type Format = 'json' | 'csv';

/** The farm id in a path segment, or undefined when the segment is not one (bad escape, not a name). */
export function farmIdParam(segment: string): string | undefined {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    return undefined;
  }
  return NAME_PATTERN.test(id) ? id : undefined;
}

/** The answer to a path segment that is not a farm id. */
export const BAD_FARM_ID = { error: `a farm id matches ${NAME_PATTERN.source}` };

/** The answer's form: `format=` wins, else `Accept: text/csv` asks for CSV; undefined for a bad `format`. */
export function chooseFormat(url: URL, accept: string | undefined): Format | undefined {
  const format = url.searchParams.get('format');
  if (format !== null) return format === 'csv' || format === 'json' ? format : undefined;
  return accept !== undefined && /(^|[,\s])text\/csv\b/i.test(accept) ? 'csv' : 'json';
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}

function sendCsv(res: ServerResponse, text: string, filename: string): void {
  res.writeHead(200, {
    'Content-Type': 'text/csv; charset=utf-8; header=present',
    'Content-Disposition': `attachment; filename="${filename}"`,
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

export interface ReportApiOptions {
  redis: Redis | Cluster;
  keys: RedisKeys;
  /** Reads the broker state of the farms with one, for RAS's figures in the report. */
  reader: FarmReader;
  /** Redis server time, ms: the default periods follow the one clock. */
  now: () => Promise<number>;
  /** The farms of the running configuration. */
  farms: () => FarmDirectory;
  /** Whether `api.tokensSha256` lists a token now: the user list is never served by an open API. */
  tokensConfigured: () => boolean;
  /** `distinctUsers.retentionMonths` of the running configuration. */
  retentionMonths: () => number;
}

/** The answer to a user list asked of an API without tokens. */
export const USER_LIST_NEEDS_TOKEN = {
  error:
    'the user list is served only with an API token: set api.tokensSha256 in the configuration and send Authorization: Bearer <token>',
};

export class ReportApi {
  constructor(private readonly options: ReportApiOptions) {}

  /** Answers a history or report path; returns false for any other path. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const history = /^\/api\/v1\/farms\/([^/]+)\/history\/?$/.exec(path);
    const report = /^\/api\/v1\/report\/?$/.test(path);
    if (/^\/api\/v1\/distinct-users\/users\/?$/.test(path)) {
      await this.userList(req, res);
      return true;
    }
    if (!history && !report) return false;
    const url = new URL(req.url ?? '/', 'http://collector');
    const format = chooseFormat(url, req.headers.accept);
    if (format === undefined) {
      sendJson(res, 400, { error: 'format must be json or csv' });
      return true;
    }
    let farm: FarmConfig | undefined;
    if (history) {
      const id = farmIdParam(history[1]!);
      if (id === undefined) {
        sendJson(res, 400, BAD_FARM_ID);
        return true;
      }
      farm = this.options.farms().get(id);
      if (!farm) {
        sendJson(res, 404, { error: `no farm ${id}` });
        return true;
      }
    }
    const now = await this.options.now();
    const today = Math.floor(now / DAY_MS);
    const fallback: Period = farm ? { fromDay: today - HISTORY_DEFAULT_DAYS + 1, toDay: today } : lastFullMonth(now);
    let period: Period;
    try {
      period = parsePeriod(
        url.searchParams.get('from') ?? undefined,
        url.searchParams.get('to') ?? undefined,
        fallback,
      );
    } catch (err) {
      if (!(err instanceof PeriodError)) throw err;
      sendJson(res, 400, { error: err.message });
      return true;
    }
    const span = `${dayText(period.fromDay)}-${dayText(period.toDay)}`;
    const all = this.options.farms().list();
    let farms: readonly FarmConfig[] = farm ? [farm] : all;
    const customer = url.searchParams.get('customer');
    const key = url.searchParams.get('key');
    const distinctUsers = url.searchParams.get('distinctUsers');
    if (distinctUsers !== null && distinctUsers !== 'true' && distinctUsers !== 'false') {
      sendJson(res, 400, {
        error: `distinctUsers must be true or false, not ${JSON.stringify(distinctUsers.slice(0, 64))}`,
      });
      return true;
    }
    try {
      farms = selectFarms(farms, { customer: customer ?? undefined, key: key ?? undefined });
    } catch (err) {
      if (!(err instanceof FarmSelectionError)) throw err;
      sendJson(res, 404, { error: err.message });
      return true;
    }
    if (farm) {
      const read = await readHistory(this.options.redis, this.options.keys, [farm], period);
      const days = read.farms[0]!.days;
      if (format === 'csv') sendCsv(res, historyCsv(read.farms), `rasmon-history-${farm.id}-${span}.csv`);
      else sendJson(res, 200, { farm: farm.id, from: dayText(period.fromDay), to: dayText(period.toDay), days });
      return true;
    }
    const built = await readReport(
      this.options,
      all,
      farms,
      period,
      distinctUsers === 'true',
      this.options.retentionMonths(),
    );
    if (format === 'csv') sendCsv(res, reportCsv(built), `rasmon-report-${span}.csv`);
    else sendJson(res, 200, built);
    return true;
  }

  /** The users of one month behind the distinct-user counts, as CSV; refused on an API without tokens. */
  private async userList(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.options.tokensConfigured()) {
      sendJson(res, 403, USER_LIST_NEEDS_TOKEN);
      return;
    }
    const url = new URL(req.url ?? '/', 'http://collector');
    const month = url.searchParams.get('month');
    if (month === null || !MONTH_PATTERN.test(month)) {
      sendJson(res, 400, { error: 'month must be YYYY-MM (a calendar month, UTC)' });
      return;
    }
    const customer = url.searchParams.get('customer');
    let farms = this.options.farms().list();
    try {
      farms = selectFarms(farms, { customer: customer ?? undefined });
    } catch (err) {
      if (!(err instanceof FarmSelectionError)) throw err;
      sendJson(res, 404, { error: err.message });
      return;
    }
    let list: UserList;
    try {
      list = await userListCsv(this.options.redis, this.options.keys, farms, month, {
        months: this.options.retentionMonths(),
        now: await this.options.now(),
      });
    } catch (err) {
      if (!(err instanceof NoMonthDataError)) throw err;
      sendJson(res, 404, { error: err.message });
      return;
    }
    // Farms asked for that have no data for the month (their count is null in the report): named,
    // so that a list without them is not taken for all of the customer's users.
    if (list.farmsWithoutData.length > 0) res.setHeader('X-Rasmon-Farms-Without-Data', list.farmsWithoutData.join(' '));
    sendCsv(
      res,
      list.csv,
      `rasmon-users-${month}${customer === null ? '' : `-${customer.replace(/[^A-Za-z0-9._-]/g, '_')}`}.csv`,
    );
  }
}
