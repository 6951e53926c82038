/**
 * What the commands about one farm (`forget-host`, `rebind-host`, `correct`) share: the configuration
 * loaded as the collector loads it, and the farm named on the command line. A configuration that
 * does not load, or a farm it does not hold, fails the command (exit 2) in one line.
 */
import { ConfigError, type CollectorConfig, type FarmConfig } from './config/config.js';
import { loadConfig } from './config/config-loader.js';
import { FarmDirectory } from './config/farm-directory.js';

export interface CommandFarm {
  config: CollectorConfig;
  farms: FarmDirectory;
  farm: FarmConfig;
}

export function loadCommandFarm(
  configPath: string | undefined,
  farmId: string,
  fail: (message: string) => never,
): CommandFarm {
  let config: CollectorConfig;
  try {
    config = loadConfig({ ...(configPath ? { path: configPath } : {}), env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  const farms = new FarmDirectory(config.farms);
  const farm = farms.get(farmId);
  if (!farm) fail(`farm ${farmId} is not in the configuration (farms: ${config.farms.map((f) => f.id).join(', ')})`);
  return { config, farms, farm };
}
