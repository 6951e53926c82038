/**
 * Where the collector's configuration comes from: the file named by `--config` or `RASMON_CONFIG`,
 * with `REDIS_URL` and `RASMON_LISTEN` laid over it, validated by `config.ts`.
 */
import { ConfigFileError, readConfigFile } from '@rasmon/protocol/kit';
import {
  ConfigError,
  isRecord,
  isRedisUrl,
  LISTEN_HINT,
  parseConfig,
  parseListen,
  REDIS_URL_HINT,
  type CollectorConfig,
} from './config.js';

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** Puts the environment's overrides into the raw file object, so they are validated with the rest. */
function applyOverrides(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  const redisUrl = nonEmpty(env.REDIS_URL);
  const listen = nonEmpty(env.RASMON_LISTEN);
  if (redisUrl !== undefined && !isRedisUrl(redisUrl)) {
    throw new ConfigError(`REDIS_URL: ${REDIS_URL_HINT}`, { key: 'REDIS_URL' });
  }
  if (listen !== undefined && parseListen(listen) === undefined) {
    throw new ConfigError(`RASMON_LISTEN: ${LISTEN_HINT}`, { key: 'RASMON_LISTEN' });
  }
  if (!isRecord(raw)) return raw;
  const merged: Record<string, unknown> = { ...raw };
  if (listen !== undefined) merged.listen = listen;
  // A non-mapping redis is left alone so the file's own mistake is still reported.
  if (redisUrl !== undefined && (merged.redis === undefined || isRecord(merged.redis))) {
    const redis: Record<string, unknown> = { ...merged.redis };
    delete redis.cluster;
    delete redis.sentinel;
    merged.redis = { ...redis, url: redisUrl };
  }
  return merged;
}

/**
 * Reads, validates and returns the collector configuration.
 *
 * The file is `options.path` (the `--config` flag) or else `env.RASMON_CONFIG`; `.yaml`/`.yml` is read
 * as YAML and `.json` as JSON. `env.REDIS_URL` replaces the file's redis url, cluster and sentinel;
 * `env.RASMON_LISTEN` replaces `listen`. Empty environment variables count as unset.
 *
 * @param options.env - defaults to `process.env`
 * @throws {@link ConfigError} with a one-line message naming the file, key or variable at fault
 */
export function loadConfig(options: { path?: string | undefined; env?: NodeJS.ProcessEnv } = {}): CollectorConfig {
  const env = options.env ?? process.env;
  const file = nonEmpty(options.path) ?? nonEmpty(env.RASMON_CONFIG);
  if (file === undefined) {
    throw new ConfigError('--config FILE or RASMON_CONFIG is required', { key: '--config' });
  }
  let raw: unknown;
  try {
    raw = readConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigFileError) throw new ConfigError(err.message, { cause: err });
    throw err;
  }
  return parseConfig(applyOverrides(raw, env), `config file ${file}`);
}
