/**
 * The JSON API (docs/design.md §4): `/api/v1/farms`, `/api/v1/farms/{farm}`, `/api/v1/farms/{farm}/peaks`.
 * Timestamps are ISO-8601 strings. It names users and client addresses: outside a lab, protect it
 * with `api.tokensSha256`.
 */
import { disagreements } from '../broker/adopted-license.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Cluster, Redis } from 'ioredis';
import { DAY_MS, utcDay } from '@rasmon/protocol';
import { bearerToken } from '../config/bearer-token.js';
import { sha256Hex, type CollectorConfig, type FarmConfig } from '../config/config.js';
import type { FarmDirectory } from '../config/farm-directory.js';
import type { FarmReader } from '../engine/farm-reader.js';
import { farmSummary, type LicenseOrigin } from './farm-document.js';
import { splitDayRecord, type RedisKeys } from '../engine/redis-schema.js';
import { BAD_FARM_ID, farmIdParam, ReportApi } from './report-api.js';

/** Builds one farm's document off the agents' thread (farm-document-thread.ts). */
export interface FarmDocuments {
  document(farm: FarmConfig, origin: LicenseOrigin, page: { offset: number; limit: number }): Promise<Buffer>;
}

/** Connections per page of a farm's document, unless `limit` asks otherwise (1 to MAX_PAGE). */
export const DEFAULT_PAGE = 1000;
export const MAX_PAGE = 10_000;

/** `offset` and `limit` of a request, or why they are not usable. */
function pageOf(url: string | undefined): { offset: number; limit: number } | { error: string } {
  const query = new URL(url ?? '/', 'http://collector').searchParams;
  const number = (name: string, fallback: number, min: number, max: number): number | string => {
    const text = query.get(name);
    if (text === null) return fallback;
    if (!/^\d{1,9}$/.test(text) || Number(text) < min || Number(text) > max)
      return `${name} must be a whole number from ${min} to ${max}`;
    return Number(text);
  };
  const offset = number('offset', 0, 0, 999_999_999);
  const limit = number('limit', DEFAULT_PAGE, 1, MAX_PAGE);
  if (typeof offset === 'string') return { error: offset };
  if (typeof limit === 'string') return { error: limit };
  return { offset, limit };
}

export interface ApiOptions {
  documents: FarmDocuments;
  redis: Redis | Cluster;
  keys: RedisKeys;
  reader: FarmReader;
  config: () => CollectorConfig;
  /** The farms of the running configuration. */
  farms: () => FarmDirectory;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}

export class Api {
  private readonly reports: ReportApi;

  constructor(private readonly options: ApiOptions) {
    this.reports = new ReportApi({
      redis: options.redis,
      keys: options.keys,
      reader: options.reader,
      now: async () => (await options.reader.read([])).now,
      farms: options.farms,
      tokensConfigured: () => options.config().api.tokensSha256.length > 0,
      retentionMonths: () => options.config().distinctUsers.retentionMonths,
    });
  }

  /** Handles a request under `/api/`; returns false when the path is not the API's. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const match = /^\/api\/v1\/farms(?:\/([^/]+)(\/peaks)?)?\/?$/.exec(path);
    if (!path.startsWith('/api/')) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, { error: 'only GET is supported' }, { Allow: 'GET, HEAD' });
      return true;
    }
    const config = this.options.config();
    if (!this.authorized(req, config)) {
      send(
        res,
        401,
        { error: 'a bearer token listed in api.tokensSha256 is required' },
        { 'WWW-Authenticate': 'Bearer realm="rasmon"' },
      );
      return true;
    }
    try {
      if (await this.reports.handle(req, res, path)) return true;
    } catch (err) {
      send(res, 503, { error: `Redis cannot answer: ${(err as Error).message}` });
      return true;
    }
    if (!match) {
      send(res, 404, { error: `no such API path: ${path}` });
      return true;
    }
    const [, farmId, peaks] = match;
    try {
      if (farmId === undefined) {
        const read = await this.options.reader.read(this.options.farms().list());
        send(res, 200, { farms: read.farms.map((farm) => farmSummary(farm, this.origin(farm.id))) });
        return true;
      }
      const id = farmIdParam(farmId);
      if (id === undefined) {
        send(res, 400, BAD_FARM_ID);
        return true;
      }
      const farm = this.options.farms().get(id);
      if (!farm) {
        send(res, 404, { error: `no farm ${id}` });
        return true;
      }
      if (peaks) {
        send(res, 200, await this.peaks(farm));
      } else {
        const page = pageOf(req.url);
        if ('error' in page) {
          send(res, 400, { error: page.error });
          return true;
        }
        const body = await this.options.documents.document(farm, this.origin(farm.id), page);
        res.writeHead(200, {
          'Content-Type': 'application/json; charset=utf-8',
          'Cache-Control': 'no-store',
          'Content-Length': String(body.length),
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      }
    } catch (err) {
      send(res, 503, { error: `Redis cannot answer: ${(err as Error).message}` });
    }
    return true;
  }

  /** Whether the farm's license values come from RAS now, and what its configuration says otherwise. */
  private origin(id: string): LicenseOrigin {
    const farms = this.options.farms();
    const adopted = farms.adopted(id);
    const configured = farms.configured(id);
    if (!adopted || !configured) return { licenseFrom: 'config', configDisagrees: [] };
    return { licenseFrom: 'ras', configDisagrees: disagreements(configured, adopted) };
  }

  private authorized(req: IncomingMessage, config: CollectorConfig): boolean {
    if (config.api.tokensSha256.length === 0) return true;
    const token = bearerToken(req);
    return token !== undefined && config.api.tokensSha256.includes(sha256Hex(token));
  }

  private async peaks(farm: FarmConfig) {
    const stored = await this.options.redis.hgetall(this.options.keys.farm(farm.id).peaks);
    const peaks = Object.entries(stored)
      // A finished day holds its whole record, the day still open its peak so far.
      .map(([day, value]) => ({ day: Number(day), users: Number(splitDayRecord(value).peakUsers) }))
      .sort((a, b) => a.day - b.day)
      .map(({ day, users }) => ({ day: utcDay(day * DAY_MS), users }));
    return { peaks };
  }
}
