/**
 * `rasmon-collector forget-host --config FILE --farm ID --host NAME`: removes one host's keys and
 * series now (a decommissioned host), under the farm's configured rules. Exit 0 when forgotten,
 * 1 when the farm holds no such host or Redis cannot be reached, 2 on bad usage or configuration.
 */
import { leaseMs } from '@rasmon/protocol';
import { parseHostCommand } from './farm-command.js';
import { LicenseEngine } from './engine/license-engine.js';
import { createLogger } from './logger.js';
import { createRedis } from './engine/redis-client.js';
import { RedisKeys } from './engine/redis-schema.js';
import { defineScripts } from './engine/scripts.js';

export const FORGET_USAGE = `Usage: rasmon-collector forget-host --config FILE --farm ID --host NAME

Removes the host's keys and series from Redis now: its connections stop counting, and a host of
that name that reports again is a new host. Retired hosts are forgotten by themselves after the
farm's forgetHostsAfterDays.`;

export async function forgetHost(argv: string[], fail: (message: string) => never): Promise<number> {
  const command = parseHostCommand('forget-host', FORGET_USAGE, argv, fail);
  if (!command) return 0;
  const { config, farms, farm, host } = command;

  const log = createLogger();
  const redis = createRedis(config.redis);
  redis.on('error', () => undefined);
  try {
    defineScripts(redis);
    await redis.connect();
    const engine = new LicenseEngine(
      redis,
      new RedisKeys(config.redis.prefix),
      () => farms,
      leaseMs(config.heartbeatSeconds),
      config.limits.maxSessions,
    );
    const result = await engine.farm(farm.id)!.forgetHost(host);
    if (result.kind !== 'forgotten') {
      process.stderr.write(`rasmon-collector: farm ${farm.id} has no host ${host}\n`);
      return 1;
    }
    log.info(
      { farm: farm.id, host, wasLive: result.wasLive },
      'host forgotten by forget-host: its keys and series are gone',
    );
    process.stdout.write(
      `forgot host ${host} of farm ${farm.id}` +
        (result.wasLive ? ' (its agent was connected: if it reports again it is a new host)' : '') +
        '\n',
    );
    return 0;
  } catch (err) {
    process.stderr.write(`rasmon-collector: could not forget host ${host}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    redis.disconnect();
  }
}
