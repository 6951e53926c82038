/**
 * `npm run bench`: how one collector holds up, on loopback, beside references measured in the same
 * run. Starts its own redis-server; runs the collector as its real bin. Each part stops by itself.
 *
 *   npm run bench -- [--parts ingest,fleet,viewers,flood,restart] [--profile]
 *     ingest: [--hosts 20] [--seconds 10] [--batch 500] [--window 2] [--sessions 200]
 *     fleet:  [--farms 100] [--farm-hosts 100] [--farm-sessions 20] [--heartbeat 15] [--scrape-seconds 10]
 *     viewers: [--viewed-sessions 10000] [--view-seconds 10] [--view-limit 1000]
 *     flood:   [--flood-seconds 30] (seconds per phase) [--flood-quotas raised|sized]
 *     restart: [--restart-agents 10000] [--restart-farms 100] [--restart-give-up 600]
 *              [--restart-variants balancer,proxy,default,raised]
 *     redis-loss: [--loss-farms 100] [--loss-hosts 100] [--loss-sessions 20] [--loss-busy 0]
 *              [--loss-modes flushall,restart] [--loss-give-up 120]
 */
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { RedisServer } from '../test/support/redis-server.js';
import { runFleet } from './fleet.js';
import { runIngest } from './ingest.js';
import { RESTART_VARIANTS, runRestart, type RestartVariant } from './restart.js';
import { runViewers } from './viewers.js';
import { runFlood } from './flood.js';
import { LOSS_MODES, runRedisLoss, type LossMode } from './redis-loss.js';
import { load } from './common.js';

const USAGE = `usage: npm run bench -- [--parts ingest,fleet,viewers,flood,restart,redis-loss] [--profile]
  ingest: [--hosts 20] [--seconds 10] [--batch 500] [--window 2] [--sessions 200]
  fleet:  [--farms 100] [--farm-hosts 100] [--farm-sessions 20] [--heartbeat 15] [--scrape-seconds 10]
  viewers: [--viewed-sessions 10000] [--view-seconds 10] [--view-limit 1000]
  flood:   [--flood-seconds 30] (seconds per phase) [--flood-quotas raised|sized]
  restart: [--restart-agents 10000] [--restart-farms 100] [--restart-give-up 600]
           [--restart-variants balancer,proxy,default,raised]
  redis-loss: [--loss-farms 100] [--loss-hosts 100] [--loss-sessions 20] [--loss-busy 0]
           [--loss-modes flushall,restart] [--loss-give-up 120]`;

/** A mistake in how the bench was asked to run: one line and the usage, exit 2. */
class UsageError extends Error {}

function usageError(message: string): never {
  console.error(`bench: ${message}\n${USAGE}`);
  process.exit(2);
}

let values: ReturnType<typeof parseOptions>['values'];
try {
  ({ values } = parseOptions());
} catch (err) {
  usageError(err instanceof Error ? err.message : String(err));
}

function parseOptions() {
  return parseArgs({
    options: {
      parts: { type: 'string', default: 'ingest,fleet,viewers,flood,restart,redis-loss' },
      profile: { type: 'boolean', default: false },
      hosts: { type: 'string', default: '20' },
      seconds: { type: 'string', default: '10' },
      batch: { type: 'string', default: '500' },
      window: { type: 'string', default: '2' },
      sessions: { type: 'string', default: '200' },
      farms: { type: 'string', default: '100' },
      'farm-hosts': { type: 'string', default: '100' },
      'farm-sessions': { type: 'string', default: '20' },
      heartbeat: { type: 'string', default: '15' },
      'scrape-seconds': { type: 'string', default: '10' },
      'viewed-sessions': { type: 'string', default: '10000' },
      'view-seconds': { type: 'string', default: '10' },
      'flood-seconds': { type: 'string', default: '30' },
      'flood-quotas': { type: 'string', default: 'raised' },
      'view-limit': { type: 'string', default: '1000' },
      'restart-agents': { type: 'string', default: '10000' },
      'restart-farms': { type: 'string', default: '100' },
      'restart-give-up': { type: 'string', default: '600' },
      'restart-variants': { type: 'string', default: RESTART_VARIANTS.join(',') },
      'loss-farms': { type: 'string', default: '100' },
      'loss-hosts': { type: 'string', default: '100' },
      'loss-sessions': { type: 'string', default: '20' },
      'loss-busy': { type: 'string', default: '0' },
      'loss-modes': { type: 'string', default: LOSS_MODES.join(',') },
      'loss-give-up': { type: 'string', default: '120' },
      help: { type: 'boolean', default: false },
    },
  });
}

function number(name: keyof typeof values): number {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value <= 0)
    throw new UsageError(`--${name} must be a positive number, not ${String(values[name])}`);
  return value;
}

async function main(): Promise<void> {
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const parts = new Set(String(values.parts).split(','));
  for (const part of parts)
    if (!['ingest', 'fleet', 'viewers', 'flood', 'restart', 'redis-loss'].includes(part))
      throw new UsageError(`unknown part ${part} (ingest, fleet, viewers, flood, restart, redis-loss)`);
  const variants = String(values['restart-variants']).split(',');
  for (const name of variants)
    if (!(RESTART_VARIANTS as readonly string[]).includes(name))
      throw new UsageError(`unknown restart variant ${name} (${RESTART_VARIANTS.join(', ')})`);
  const lossModes = String(values['loss-modes']).split(',');
  for (const mode of lossModes)
    if (!(LOSS_MODES as readonly string[]).includes(mode))
      throw new UsageError(`unknown loss mode ${mode} (${LOSS_MODES.join(', ')})`);
  const floodQuotas = values['flood-quotas'];
  if (floodQuotas !== 'raised' && floodQuotas !== 'sized')
    throw new UsageError(`unknown flood quotas ${floodQuotas} (raised, sized)`);
  const busy = Number(values['loss-busy']);
  if (!Number.isInteger(busy) || busy < 0 || busy > 64)
    throw new UsageError(`--loss-busy must be a whole number from 0 to 64, not ${String(values['loss-busy'])}`);
  const fleet = { farms: number('farms'), hosts: number('farm-hosts') };
  const fdLimit = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
  const sockets = Math.max(
    parts.has('fleet') ? fleet.farms * fleet.hosts : 0,
    parts.has('restart') ? number('restart-agents') : 0,
    parts.has('redis-loss') ? number('loss-farms') * number('loss-hosts') : 0,
  );
  if (fdLimit < sockets + 1000) {
    console.error(`bench: the open-file limit (${fdLimit}) is below ${sockets + 1000}: raise it with ulimit -n`);
    process.exit(1);
  }
  console.log(
    `${new Date().toISOString()} ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${load()}`,
  );
  const redis = await RedisServer.start();
  try {
    if (parts.has('ingest')) {
      await runIngest(redis, {
        hosts: number('hosts'),
        seconds: number('seconds'),
        batch: number('batch'),
        window: number('window'),
        sessions: number('sessions'),
        profile: values.profile === true,
      });
    }
    if (parts.has('fleet')) {
      await runFleet(redis, {
        ...fleet,
        sessions: number('farm-sessions'),
        heartbeatSeconds: number('heartbeat'),
        scrapeSeconds: number('scrape-seconds'),
      });
    }
    if (parts.has('viewers')) {
      await runViewers(redis, {
        sessions: number('viewed-sessions'),
        seconds: number('view-seconds'),
        limit: number('view-limit'),
      });
    }
    if (parts.has('flood')) await runFlood(redis, { seconds: number('flood-seconds'), quotas: floodQuotas });
    if (parts.has('restart')) {
      await runRestart(redis, {
        agents: number('restart-agents'),
        farms: number('restart-farms'),
        giveUpSeconds: number('restart-give-up'),
        variants: variants as RestartVariant[],
      });
    }
    if (parts.has('redis-loss')) {
      await runRedisLoss(redis, {
        farms: number('loss-farms'),
        hosts: number('loss-hosts'),
        sessions: number('loss-sessions'),
        busy,
        modes: lossModes as LossMode[],
        giveUpSeconds: number('loss-give-up'),
      });
    }
  } finally {
    await redis.stop();
  }
}

main().catch((err) => {
  if (err instanceof UsageError) usageError(err.message);
  console.error(err);
  process.exit(1);
});
