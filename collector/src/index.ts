export { Collector, type CollectorOptions } from './collector.js';
export { loadConfig, parseConfig, ConfigError, sha256Hex, type CollectorConfig, type FarmConfig } from './config.js';
export { RedisKeys } from './redis-keys.js';
