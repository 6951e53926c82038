export { Collector, type CollectorOptions } from './collector.js';
export { parseConfig, ConfigError, sha256Hex, type CollectorConfig, type FarmConfig } from './config/config.js';
export { loadConfig } from './config/config-loader.js';
export { RedisKeys } from './engine/redis-schema.js';
