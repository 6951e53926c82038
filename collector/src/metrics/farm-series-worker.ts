/**
 * The farm series of /metrics, read and rendered in a worker thread of their own (farm-series-thread.ts
 * drives it). At 10,000 hosts a scrape decodes megabytes of Redis replies and renders tens of
 * thousands of lines: in the agents' thread that work, and the garbage collection it causes, would
 * hold their frames up. Here it has its own event loop, its own heap and its own Redis connection;
 * the agents' thread only receives the finished body, moved, not copied.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { CollectorConfig, FarmConfig } from '../config/config.js';
import { FarmReader } from '../engine/farm-reader.js';
import { FarmSeries } from './farm-series.js';
import { createRedis, readyWithin } from '../engine/redis-client.js';
import { RedisKeys } from '../engine/redis-schema.js';

export interface WorkerData {
  redis: CollectorConfig['redis'];
}

/** What the agents' thread asks. */
export type Request =
  /** The farms of the running configuration, sent at start and after each reload. */
  { type: 'farms'; farms: readonly FarmConfig[] } | { type: 'render'; id: number };

/** What the worker answers a render with: the body, or why Redis could not give it. */
export type Reply = { id: number; body: Uint8Array } | { id: number; error: string };

const port = parentPort!;
const { redis: redisConfig } = workerData as WorkerData;
const redis = createRedis(redisConfig);
// Reported by the agents' thread, whose connection goes to the same Redis; here a failed read is answered as such.
redis.on('error', () => undefined);
redis.connect().catch(() => undefined);
/** How long a render waits for this thread's connection to come up (at start, after an outage). */
const READY_WAIT_MS = 2000;

/** Resolves once this thread's connection is ready, rejects if it is not within READY_WAIT_MS. */
function connected(): Promise<void> {
  return readyWithin(redis, READY_WAIT_MS);
}

const series = new FarmSeries(new FarmReader(redis, new RedisKeys(redisConfig.prefix)));
let farms: readonly FarmConfig[] = [];

port.on('message', (request: Request) => {
  if (request.type === 'farms') {
    farms = request.farms;
  } else {
    connected()
      .then(() => series.render(farms))
      .then(
        (body) => {
          // A fresh copy the size of the body, moved to the agents' thread: the series keep their own.
          const moved = new Uint8Array(body);
          port.postMessage({ id: request.id, body: moved } satisfies Reply, [moved.buffer]);
        },
        (err: unknown) => {
          // No old value may outlive a failed read.
          series.clear();
          port.postMessage({ id: request.id, error: err instanceof Error ? err.message : String(err) } satisfies Reply);
        },
      );
  }
});
