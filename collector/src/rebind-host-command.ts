/**
 * `rasmon-collector rebind-host --config FILE --farm ID --host NAME`: removes the host's binding to
 * its agent's host key (a re-imaged server, a reinstalled agent), so that the next hello with a host
 * key binds the host anew (docs/design.md §6, "Host binding"). Logged. Exit 0 when the host was
 * bound, 1 when it was not or Redis cannot be reached, 2 on bad usage or configuration.
 */
import { parseHostCommand } from './farm-command.js';
import { LicenseEngine } from './engine/license-engine.js';
import { createLogger } from './logger.js';
import { createRedis } from './engine/redis-client.js';
import { RedisKeys } from './engine/redis-schema.js';

export const REBIND_USAGE = `Usage: rasmon-collector rebind-host --config FILE --farm ID --host NAME

Removes the host's binding to its agent's host key: the next agent that says hello for this host
with a host key (the re-imaged server's new agent) binds it. Until then any holder of the farm's
token can bind it, so run this when the new agent is about to connect.`;

export async function rebindHost(argv: string[], fail: (message: string) => never): Promise<number> {
  const command = parseHostCommand('rebind-host', REBIND_USAGE, argv, fail);
  if (!command) return 0;
  const { config, farms, farm, host } = command;

  const log = createLogger();
  const redis = createRedis(config.redis);
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    // Only the binding is touched: no script runs, so none is loaded.
    const engine = new LicenseEngine(redis, new RedisKeys(config.redis.prefix), () => farms, 0, 0);
    const wasBound = await engine.farm(farm.id)!.unbindHost(host);
    if (!wasBound) {
      process.stderr.write(`rasmon-collector: host ${host} of farm ${farm.id} is not bound to a host key\n`);
      return 1;
    }
    log.info(
      { farm: farm.id, host },
      'host binding removed by rebind-host: the next hello with a host key binds the host',
    );
    process.stdout.write(
      `unbound host ${host} of farm ${farm.id}: the next agent that says hello for it with a host key binds it\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`rasmon-collector: could not rebind host ${host}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    redis.disconnect();
  }
}
