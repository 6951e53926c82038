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
import { createRedis } from '../engine/redis-client.js';
import { RedisKeys } from '../engine/redis-schema.js';
import { documentConnections, documentHead, type LicenseOrigin } from './farm-document.js';

export interface WorkerData {
  redis: CollectorConfig['redis'];
}

export interface Request {
  id: number;
  farm: FarmConfig;
  origin: LicenseOrigin;
}

/** The document's JSON as bytes, or why Redis could not give it. */
export type Reply = { id: number; body: Uint8Array } | { id: number; error: string };

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
 * Per farm, its connections part as JSON text, kept while the farm's version is unchanged: time alone
 * changes the summary and the hosts, never the connections, so a quiet big farm's megabytes are read
 * from Redis and serialized once, not every second.
 */
const connectionsText = new Map<string, { key: string; text: string }>();

function connected(): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error(`redis ${redis.status}`));
    }, READY_WAIT_MS);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}

async function build(farm: FarmConfig, origin: LicenseOrigin): Promise<Built> {
  await connected();
  const version = (await reader.versions([farm]))[0] ?? null;
  const key = JSON.stringify([version, farm, origin]);
  const cached = built.get(farm.id);
  if (cached && cached.key === key && Date.now() - cached.at < MAX_AGE_MS) return cached;
  const at = Date.now();
  const read = await reader.read([farm]);
  const state = read.farms[0]!;
  // A reload may change what a connection consumes (countDisconnected) without a frame: the
  // configuration is part of the key.
  const partKey = JSON.stringify([version, farm]);
  let part = connectionsText.get(farm.id);
  if (!part || part.key !== partKey || version === null) {
    const text = JSON.stringify(await documentConnections(redis, keys, farm, state));
    part = { key: partKey, text };
    connectionsText.set(farm.id, part);
  }
  // The head's object, then the connections' members spliced in after its last one.
  const head = JSON.stringify(documentHead(state, origin));
  const body = Buffer.from(`${head.slice(0, -1)},${part.text.slice(1)}`);
  const fresh = { key, at, body };
  built.set(farm.id, fresh);
  return fresh;
}

port.on('message', (request: Request) => {
  let pending = building.get(request.farm.id);
  if (!pending) {
    pending = build(request.farm, request.origin).finally(() => building.delete(request.farm.id));
    building.set(request.farm.id, pending);
  }
  pending.then(
    ({ body }) => {
      const moved = new Uint8Array(body);
      port.postMessage({ id: request.id, body: moved } satisfies Reply, [moved.buffer]);
    },
    (err: unknown) => {
      built.delete(request.farm.id);
      connectionsText.delete(request.farm.id);
      port.postMessage({ id: request.id, error: err instanceof Error ? err.message : String(err) } satisfies Reply);
    },
  );
});
