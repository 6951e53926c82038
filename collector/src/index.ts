export { Collector, type CollectorOptions } from './collector.js';
export { parseConfig, ConfigError, sha256Hex, type CollectorConfig, type FarmConfig } from './config.js';
export { loadConfig } from './config-loader.js';
export { RedisKeys } from './redis-keys.js';
