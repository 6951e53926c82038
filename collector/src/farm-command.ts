/**
 * What the commands about one farm (`forget-host`, `rebind-host`, `correct`) share: the configuration
 * loaded as the collector loads it, and the farm named on the command line. A configuration that
 * does not load, or a farm it does not hold, fails the command (exit 2) in one line. The commands
 * about one host of a farm also share their flags (`--config --farm --host`).
 */
import { normalizeHost } from '@rasmon/protocol';
import { parseFlags } from './cli-flags.js';
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

export interface CommandHost extends CommandFarm {
  /** The host name as the agents report it (normalized). */
  host: string;
}

/**
 * The flags of a command about one host (`rasmon-collector <command> --config FILE --farm ID --host
 * NAME`), its farm and the normalized host name; undefined when --help printed the usage.
 */
export function parseHostCommand(
  command: string,
  usage: string,
  argv: string[],
  fail: (message: string) => never,
): CommandHost | undefined {
  const values = parseFlags(
    argv,
    {
      config: { type: 'string', short: 'c' },
      farm: { type: 'string' },
      host: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    (message) => fail(`${message}\n${usage}`),
  );
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return undefined;
  }
  if (!values.farm || !values.host) fail(`${command} needs --farm and --host\n${usage}`);
  const host = normalizeHost(values.host.trim());
  if (!/^[a-z0-9._-]{1,255}$/.test(host)) fail(`--host ${JSON.stringify(values.host)} is not a host name`);
  return { ...loadCommandFarm(values.config, values.farm, fail), host };
}
