/**
 * The one-farm API document (`/api/v1/farms/{farm}`), read and serialized in a worker thread of its
 * own (farm-document-thread.ts drives it). A 10,000-session farm is megabytes of Redis replies and
 * of JSON: on the agents' thread, each viewer's poll would hold every farm's frames up. Here it has
 * its own event loop and Redis connection, and one document serves every viewer of a farm while the
 * farm's state has not changed (its version, bumped by every script that changes what it shows) and
 * is less than a second old (time alone moves leases and last-seen stamps).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { CollectorConfig, FarmConfig } from '../config/config.js';
import { FarmReader } from '../engine/farm-reader.js';
import { createRedis, readyWithin } from '../engine/redis-client.js';
import { RedisKeys } from '../engine/redis-schema.js';
import { documentConnections, documentHead, type LicenseOrigin } from './farm-document.js';

export interface WorkerData {
  redis: CollectorConfig['redis'];
}

/** A page of the farm's connections: `offset` from the first, at most `limit`. */
export interface Page {
  offset: number;
  limit: number;
}

export interface Request {
  id: number;
  farm: FarmConfig;
  origin: LicenseOrigin;
  page: Page;
}

/** The document's JSON as bytes, or why Redis could not give it. */
export type Reply = { id: number; body: Uint8Array } | { id: number; error: string };

/** Documents kept (farm and page), the oldest dropped first. */
const MAX_BUILT = 64;
/** A document is served again while its farm's version is unchanged and it is younger than this. */
const MAX_AGE_MS = 1000;
const READY_WAIT_MS = 2000;

const port = parentPort!;
const { redis: redisConfig } = workerData as WorkerData;
const redis = createRedis(redisConfig);
redis.on('error', () => undefined);
redis.connect().catch(() => undefined);
const keys = new RedisKeys(redisConfig.prefix);
const reader = new FarmReader(redis, keys);

interface Built {
  /** What the document was built from: the farm's version, its configuration and origin. */
  key: string;
  at: number;
  body: Buffer;
}
const built = new Map<string, Built>();
/** One build per farm at a time, shared by every request that comes meanwhile. */
const building = new Map<string, Promise<Built>>();
/**
 * Per farm, its connections, kept while the farm's version is unchanged: time alone changes the
 * summary and the hosts, never the connections, so a quiet big farm's megabytes are read from Redis
 * once, not every second; a page serializes only its own slice.
 */
const connectionsPart = new Map<string, { key: string; connections: Connections }>();
type Connections = Awaited<ReturnType<typeof documentConnections>>;

/** Resolves once this thread's connection is ready, rejects if it is not within READY_WAIT_MS. */
function connected(): Promise<void> {
  return readyWithin(redis, READY_WAIT_MS);
}

async function build(farm: FarmConfig, origin: LicenseOrigin, page: Page): Promise<Built> {
  await connected();
  const version = (await reader.versions([farm]))[0] ?? null;
  const key = JSON.stringify([version, farm, origin, page]);
  const cacheKey = `${farm.id}\n${page.offset}\n${page.limit}`;
  const cached = built.get(cacheKey);
  if (cached && cached.key === key && Date.now() - cached.at < MAX_AGE_MS) return cached;
  const at = Date.now();
  const read = await reader.read([farm]);
  const state = read.farms[0]!;
  // A reload may change what a connection consumes (countDisconnected) without a frame: the
  // configuration is part of the key.
  const partKey = JSON.stringify([version, farm]);
  let part = connectionsPart.get(farm.id);
  if (!part || part.key !== partKey || version === null) {
    part = { key: partKey, connections: await documentConnections(redis, keys, farm, state) };
    connectionsPart.set(farm.id, part);
  }
  const { connections, overLimit } = part.connections;
  const body = Buffer.from(
    JSON.stringify({
      ...documentHead(state, origin),
      connections: connections.slice(page.offset, page.offset + page.limit),
      connectionsTotal: connections.length,
      connectionsOffset: page.offset,
      connectionsLimit: page.limit,
      // Every exempt admin desktop (at most two per host), whatever the page.
      exempt: connections.filter((connection) => connection.exempt),
      overLimit,
    }),
  );
  const fresh = { key, at, body };
  built.set(cacheKey, fresh);
  // Pages of a farm come and go with their viewers: keep the few asked last.
  if (built.size > MAX_BUILT) built.delete(built.keys().next().value!);
  return fresh;
}

port.on('message', (request: Request) => {
  const buildKey = `${request.farm.id}\n${request.page.offset}\n${request.page.limit}`;
  let pending = building.get(buildKey);
  if (!pending) {
    pending = build(request.farm, request.origin, request.page).finally(() => building.delete(buildKey));
    building.set(buildKey, pending);
  }
  pending.then(
    ({ body }) => {
      const moved = new Uint8Array(body);
      port.postMessage({ id: request.id, body: moved } satisfies Reply, [moved.buffer]);
    },
    (err: unknown) => {
      built.clear();
      connectionsPart.delete(request.farm.id);
      port.postMessage({ id: request.id, error: err instanceof Error ? err.message : String(err) } satisfies Reply);
    },
  );
});
