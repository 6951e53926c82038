import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { CollectorConfig } from '../config/config.js';

/** How long one Redis command may take before it fails. */
export const COMMAND_TIMEOUT_MS = 5000;

/**
 * Opens the configured Redis: one server, a Cluster, or a Sentinel-managed master. Commands fail
 * at once while Redis is unreachable (no offline queue), so a frame that cannot be applied is
 * refused with 1013 instead of waiting behind an outage.
 */
export function createRedis(config: CollectorConfig['redis']): Redis | Cluster {
  // `satisfies`, not a `RedisOptions` annotation: ioredis's own option type does not accept itself
  // under exactOptionalPropertyTypes (its `replyMapping`).
  const common = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    connectionName: 'rasmon-collector',
    // A Redis that stops answering (SIGSTOP, a long blocking command) fails commands instead of
    // stalling hellos, scrapes and the API behind it.
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (attempt: number) => Math.min(100 * 2 ** attempt, 2000),
  } satisfies RedisOptions;
  if (config.cluster) {
    return new Cluster(config.cluster.nodes.map(parseNode), {
      enableOfflineQueue: false,
      lazyConnect: true,
      redisOptions: common,
    });
  }
  if (config.sentinel) {
    return new Redis({
      ...common,
      sentinels: config.sentinel.sentinels.map(parseNode),
      name: config.sentinel.name,
    });
  }
  return new Redis(config.url ?? 'redis://127.0.0.1:6379', common);
}

function parseNode(node: string): { host: string; port: number } {
  const url = new URL(node.includes('://') ? node : `redis://${node}`);
  return { host: url.hostname, port: Number(url.port || 6379) };
}

/**
 * Resolves once the connection is ready, rejects (`redis <status>`) if it is not within `waitMs`:
 * what a worker thread's own connection is given at start and after an outage.
 */
export function readyWithin(redis: Redis | Cluster, waitMs: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error(`redis ${redis.status}`));
    }, waitMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}
