/**
 * `npm run demo`: the collector and a simulated fleet — three farms, a dozen hosts, a few hundred
 * users with logon/disconnect/reconnect/logoff churn and administrators — against Redis. One farm
 * runs past its seats, one is in its expiry grace, one is healthy and has a simulated RAS broker
 * with VDI and Remote PC users, which the collector polls. Serves on 127.0.0.1:9420, shows a live
 * line per farm, and stops cleanly on Ctrl-C.
 */
import { randomBytes, createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createRootLogger } from '@rasmon/protocol/kit';
import { pino } from 'pino';
import { Agent, simulateFleet } from '@rasmon/agent';
import { Collector, parseConfig } from '@rasmon/collector';
import { DAY_MS } from '@rasmon/protocol';
import { DemoBroker } from './broker/demo-broker.js';
import { findRedis, NoRedisError, type FoundRedis } from './find-redis.js';
import { renderFarms, type FarmSummary } from './render.js';

const PREFIX = 'rasmon-demo';
/** Set by Ctrl-C: the start-up still under way gives up, and its errors are not reported. */
let stopping = false;
/**
 * How to undo what has started, pushed by each part as it starts. Ctrl-C, the end of --seconds and
 * a failed start all undo them newest first, so no Redis, key, file or log is left behind.
 */
const undo: Array<() => unknown> = [];

async function shutdown(reason: string | undefined, code: number): Promise<never> {
  stopping = true;
  if (reason !== undefined) process.stdout.write(`\nstopping (${reason})…\n`);
  for (const step of undo.reverse()) {
    try {
      await step();
    } catch (err) {
      process.stderr.write(`demo: while stopping: ${(err as Error).message}\n`);
    }
  }
  if (reason !== undefined) process.stdout.write('stopped.\n');
  process.exit(code);
}

const USAGE = `Usage: npm run demo [-- --port N] [--seconds N]

  --port N      serve on 127.0.0.1:N (default 9420; 0 picks a free port)
  --seconds N   stop by itself after N seconds (default: run until Ctrl-C)

Redis: REDIS_URL if set, else 127.0.0.1:6379 if it answers, else a private redis-server.`;

interface FarmPlan {
  id: string;
  seats: number;
  license: 'primary' | 'sublicense';
  expires: number;
  hostPrefix: string;
  users: number;
  admins: number;
  note: string;
  /** A simulated RAS broker with VDI and Remote PC users, polled by the collector. */
  broker?: true;
}

function plans(now: number): FarmPlan[] {
  return [
    {
      id: 'farm-overuse',
      seats: 40,
      license: 'primary',
      expires: now + 200 * DAY_MS,
      hostPrefix: 'ovr',
      users: 140,
      admins: 2,
      note: 'more users than seats',
    },
    {
      id: 'farm-grace',
      seats: 150,
      license: 'primary',
      expires: now - 10 * DAY_MS,
      hostPrefix: 'grc',
      users: 110,
      admins: 2,
      note: 'license expired 10 days ago',
    },
    {
      id: 'farm-healthy',
      seats: 200,
      license: 'primary',
      expires: now + 365 * DAY_MS,
      hostPrefix: 'ok',
      users: 90,
      admins: 1,
      note: 'well within its seats; VDI and Remote PC users on its RAS broker',
      broker: true,
    },
  ];
}

async function clearDemoKeys(url: string): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${PREFIX}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

async function main(): Promise<void> {
  let values: { port?: string; seconds?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: { port: { type: 'string' }, seconds: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (values.help) return void process.stdout.write(`${USAGE}\n`);
  const port = Number(values.port ?? 9420);
  const seconds = values.seconds === undefined ? undefined : Number(values.seconds);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    process.stderr.write(`demo: --port must be a port number, not ${values.port}\n`);
    process.exit(2);
  }
  if (seconds !== undefined && !(seconds > 0)) {
    process.stderr.write(`demo: --seconds must be a positive number, not ${values.seconds}\n`);
    process.exit(2);
  }

  // Ctrl-C works from the first moment: each part registers how to undo itself as it starts.
  const stop = async (reason: string) => {
    if (!stopping) await shutdown(reason, 0);
  };
  process.on('SIGINT', () => void stop('Ctrl-C'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  let redis: FoundRedis;
  try {
    redis = await findRedis(process.env);
  } catch (err) {
    if (err instanceof NoRedisError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const found = redis;
  undo.push(() => found.stop());
  process.stdout.write(`rasmon demo starting with ${redis.origin}…\n`);
  undo.push(() => clearDemoKeys(found.url));

  const work = mkdtempSync(join(tmpdir(), 'rasmon-demo-'));
  undo.push(() => rmSync(work, { recursive: true, force: true }));
  const logFile = join(work, 'demo.log');
  // Written synchronously: the file is open before anything logs, and a Ctrl-C at any moment exits
  // without an asynchronous destination still opening (pino flushes one at exit, and cannot then).
  const log = createRootLogger('rasmon-demo', { level: 'info' }, pino.destination({ dest: logFile, sync: true }));
  undo.push(() => log.flush());
  const now = Date.now();
  const farms = plans(now);
  const tokens = new Map(farms.map((farm) => [farm.id, randomBytes(18).toString('base64url')]));
  // A dozen hosts: four per farm, each a simulated host that a real agent (spool, WebSocket) will serve.
  const fleets = new Map(
    farms.map((farm, index) => [
      farm.id,
      simulateFleet({
        seed: 20261129 + index,
        hosts: 4,
        users: farm.users,
        admins: farm.admins,
        hostPrefix: farm.hostPrefix,
        startMs: now,
        // Faster than life, so the numbers move while you watch: a session lasts minutes, not hours.
        perHost: { logonsPerMinute: 8 },
      }),
    ]),
  );

  // The broker before the collector, which polls it from its start; stopped after the collector,
  // which logs off from it.
  const brokers = new Map<string, DemoBroker>();
  for (const farm of farms.filter((plan) => plan.broker)) {
    const broker = await DemoBroker.start({
      seed: 20261206,
      startMs: now,
      seats: farm.seats,
      expires: farm.expires,
      hosts: fleets.get(farm.id)!.map((host) => host.simulator),
      dir: work,
    });
    brokers.set(farm.id, broker);
    undo.push(() => broker.stop());
  }
  if (stopping) return;
  const config = parseConfig(
    {
      listen: `127.0.0.1:${port}`,
      redis: { url: redis.url, prefix: PREFIX },
      heartbeatSeconds: 5,
      farms: farms.map((farm) => ({
        id: farm.id,
        seats: farm.seats,
        license: farm.license,
        expires: new Date(farm.expires).toISOString(),
        agentTokensSha256: [createHash('sha256').update(tokens.get(farm.id)!).digest('hex')],
        ...(brokers.has(farm.id) && {
          ras: { ...brokers.get(farm.id)!.ras, pollSeconds: 10, sessions: ['vdi', 'pc'] },
        }),
      })),
    },
    'demo',
  );

  await clearDemoKeys(redis.url);
  let collector: Collector;
  try {
    collector = await Collector.start({ config, log: log.child({ part: 'collector' }) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    process.stderr.write(`demo: port ${port} is in use; pick another: npm run demo -- --port ${port + 10}\n`);
    return void (await shutdown(undefined, 1));
  }
  const started = collector;
  undo.push(() => started.drain(3000));
  if (stopping) return;
  for (let i = 0; i < 200 && !collector.ready; i += 1) await new Promise((resolve) => setTimeout(resolve, 25));
  // A poll now that Redis is up: the first line shows RAS's numbers, not those of the next period.
  await Promise.all([...brokers.keys()].map((farm) => collector.pollBroker(farm)));
  if (stopping) return;
  const base = `http://127.0.0.1:${collector.address.port}`;

  const agents: Agent[] = [];
  for (const farm of farms) {
    for (const { host, simulator } of fleets.get(farm.id)!) {
      const agent = new Agent({
        source: simulator,
        spool: { dir: join(work, 'spool', host), maxBytes: 8 * 1024 * 1024 },
        pollIntervalSeconds: 1,
        snapshotIntervalSeconds: 120,
        log: log.child({ part: 'agent', host }),
        link: {
          url: base.replace(/^http/, 'ws'),
          token: tokens.get(farm.id)!,
          farm: farm.id,
          host,
          agent: 'rasmon-agent/simulated',
          // Its own key, as an installed agent makes at first start: the host is bound to it.
          hostKey: randomBytes(32).toString('base64url'),
          backoff: { initialMs: 200, maxMs: 2000 },
        },
      });
      agents.push(agent);
    }
  }
  undo.push(() => Promise.all(agents.map((agent) => agent.stop())));
  await Promise.all(agents.map((agent) => agent.start()));
  if (stopping) return;

  const tty = process.stdout.isTTY === true;
  // The page first: it is what a newcomer opens.
  const banner = [
    `status page ${base}/   (open it in a browser)`,
    `rasmon demo — ${farms.length} farms, ${agents.length} simulated hosts`,
    `  metrics   ${base}/metrics`,
    `  API       ${base}/api/v1/farms   (and ${base}/api/v1/farms/farm-overuse)`,
    ...[...brokers].map(([farm, broker]) => `  RAS       ${broker.ras.url}   (a simulated broker, for ${farm})`),
    `  logs      ${logFile}`,
    ...farms.map((farm) => `  ${farm.id.padEnd(13)} ${farm.note}`),
    `  ${seconds === undefined ? 'Ctrl-C stops it.' : `stops by itself after ${seconds} s (or Ctrl-C).`}`,
    '',
  ].join('\n');
  process.stdout.write(`${banner}\n`);

  let lines = 0;
  const show = async () => {
    try {
      const res = await fetch(`${base}/api/v1/farms`);
      const body = (await res.json()) as { farms: FarmSummary[] };
      const text = renderFarms(body.farms, Date.now());
      if (tty && lines > 0) process.stdout.write(`\x1b[${lines}A\x1b[J`);
      process.stdout.write(`${text}\n`);
      lines = text.split('\n').length;
      if (!tty) process.stdout.write('\n');
    } catch (err) {
      process.stdout.write(`(could not read the farms: ${(err as Error).message})\n`);
    }
  };
  await new Promise((resolve) => setTimeout(resolve, 1500));
  if (stopping) return;
  await show();
  const ticker = setInterval(() => void show(), tty ? 2000 : 5000);
  undo.push(() => clearInterval(ticker));
  if (seconds !== undefined) setTimeout(() => void stop(`${seconds} s elapsed`), seconds * 1000);
}

main().catch(async (err) => {
  if (stopping) return;
  process.stderr.write(`demo failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  await shutdown(undefined, 1);
});
