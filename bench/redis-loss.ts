/**
 * Redis back empty under a large fleet (issue "Redis back empty, at scale"): N agents over F farms,
 * each host with S sessions, connected to the collector's real bin; then Redis loses everything,
 * by `FLUSHALL` or by `kill -9` and an empty restart on the same port. The collector notices,
 * re-takes its connections' hosts and asks each agent for its state (`resync`); the farms are
 * rebuilding (`ras_farm_rebuilding` 1, their other series withheld) until their hosts have resent
 * it. Optionally with busy processes contending for the CPU (`--loss-busy N`), as on a machine
 * shared with other work.
 *
 * Measures, from the loss, on /metrics every second: the time until every farm exports its exact
 * users again (target ≤ 10 s), the farms rebuilding (withheld) and the farms exporting a count
 * below their real one while not rebuilding (a false all-clear: what the rebuilding state is for,
 * target none), the lowest users a farm exported meanwhile, the slowest scrape; from the agents,
 * their closes by code and upgrade refusals.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { type RedisServer } from '../test/support/redis-server.js';
import { freePort } from '../test/support/free-port.js';
import { section, sha256, startCollector, type RunningCollector } from './common.js';
import { eachLimited } from '@rasmon/protocol/kit';
import { SimAgent, byKey, farmId, newTally, token } from './sim-agent.js';

export const LOSS_MODES = ['flushall', 'restart'] as const;
export type LossMode = (typeof LOSS_MODES)[number];

export interface RedisLossOptions {
  farms: number;
  hosts: number;
  sessions: number;
  /** Busy processes (a spinning loop each) running from before the loss until the farms are exact. */
  busy: number;
  modes: readonly LossMode[];
  giveUpSeconds: number;
}

const TARGET_SECONDS = 10;

/** `ras_license_users` per farm from one /metrics body (a farm rebuilding exports none). */
function usersByFarm(body: string): Map<string, number> {
  const users = new Map<string, number>();
  for (const [, farm, value] of body.matchAll(/^ras_license_users\{farm="([^"]+)"\} (\S+)$/gm))
    users.set(farm!, Number(value));
  return users;
}

function rebuildingFarms(body: string): number {
  return body.match(/^ras_farm_rebuilding\{[^}]*\} 1$/gm)?.length ?? 0;
}

/** Processes spinning on a core each until killed: CPU contention, as from other work on the machine. */
function spawnBusy(count: number): ChildProcess[] {
  return Array.from({ length: count }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
}

async function lossOnce(redis: RedisServer, options: RedisLossOptions, mode: LossMode): Promise<void> {
  const { farms, hosts, sessions, busy } = options;
  const total = farms * hosts;
  section(
    `redis loss by ${mode === 'flushall' ? 'FLUSHALL' : 'kill -9 and an empty restart'}: ${farms} farms x ${hosts} hosts x ${sessions} sessions${busy > 0 ? `, ${busy} busy processes` : ''}`,
  );
  const client = redis.client();
  await client.flushall();
  const port = await freePort();
  const tally = newTally();
  let collector: RunningCollector | undefined;
  const fleet: SimAgent[] = [];
  let busyChildren: ChildProcess[] = [];
  try {
    collector = await startCollector(
      {
        redis: { url: redis.url, prefix: 'loss' },
        // Every simulated agent comes from 127.0.0.1: the per-address upgrade limit would refuse them.
        limits: { upgradesPerSecondPerAddress: 100_000, upgradeBurstPerAddress: 1_000_000 },
        farms: Array.from({ length: farms }, (_, f) => ({
          id: farmId(f),
          seats: hosts * sessions * 2,
          license: 'primary',
          expires: '2030-01-01T00:00:00Z',
          agentTokensSha256: [sha256(token(f))],
        })),
      },
      port,
    );
    for (let i = 0; i < total; i += 1)
      fleet.push(new SimAgent(collector.url, i % farms, Math.floor(i / farms), tally, { sessions }));
    await eachLimited(fleet, 100, (agent) => agent.setUp());
    // Every farm exact before the loss: the figures after it are measured against these.
    const expected = new Map(Array.from({ length: farms }, (_, f) => [farmId(f), hosts * sessions]));
    for (let i = 0; ; i += 1) {
      const users = usersByFarm(await (await fetch(`${collector.url}/metrics`)).text());
      if ([...expected].every(([farm, n]) => users.get(farm) === n)) break;
      if (i > 120) throw new Error('the fleet did not reach its exact users before the loss');
      await sleep(1000);
    }
    tally.closes.clear();
    tally.refusals.clear();
    tally.connectErrors = 0;
    busyChildren = spawnBusy(busy);
    await sleep(busy > 0 ? 2000 : 0);

    const t0 = Date.now();
    if (mode === 'flushall') await client.flushall();
    else await redis.restart();
    let exactAt = 0;
    let maxRebuilding = 0;
    let falseLowFarms = 0;
    let falseLowSamples = 0;
    let lowest = Infinity;
    let slowestScrapeMs = 0;
    let samples = 0;
    // Farms exact at each scrape, as `seconds after the loss: exact/rebuilding`.
    const timeline: string[] = [];
    const giveUpAt = t0 + options.giveUpSeconds * 1000;
    while (Date.now() < giveUpAt) {
      const started = Date.now();
      const body = await fetch(`${collector.url}/metrics`).then(
        (r) => r.text(),
        () => undefined,
      );
      slowestScrapeMs = Math.max(slowestScrapeMs, Date.now() - started);
      if (body !== undefined) {
        samples += 1;
        const users = usersByFarm(body);
        const rebuilding = rebuildingFarms(body);
        maxRebuilding = Math.max(maxRebuilding, rebuilding);
        let low = 0;
        let exact = 0;
        for (const [farm, n] of expected) {
          const value = users.get(farm);
          if (value === undefined) continue;
          lowest = Math.min(lowest, value);
          if (value === n) exact += 1;
          else if (value < n) low += 1;
        }
        falseLowFarms = Math.max(falseLowFarms, low);
        if (low > 0) falseLowSamples += 1;
        timeline.push(`${((Date.now() - t0) / 1000).toFixed(1)}: ${exact}/${rebuilding}`);
        if (exact === farms) {
          exactAt = Date.now();
          break;
        }
      }
      await sleep(Math.max(0, 1000 - (Date.now() - started)));
    }
    const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(
      exactAt
        ? `every farm exact ${seconds(exactAt - t0)} after the loss (target ≤ ${TARGET_SECONDS} s: ${exactAt - t0 <= TARGET_SECONDS * 1000 ? 'met' : 'missed'})`
        : `not every farm exact after ${options.giveUpSeconds} s (target ≤ ${TARGET_SECONDS} s: missed)`,
    );
    console.log(
      `farms rebuilding (series withheld) at most ${maxRebuilding} of ${farms}; farms exporting fewer users than they hold while not rebuilding: at most ${falseLowFarms}, in ${falseLowSamples} of ${samples} scrapes (target: none)`,
    );
    console.log(
      `lowest users a farm exported meanwhile: ${lowest === Infinity ? 'none exported' : lowest} (each farm holds ${hosts * sessions}); slowest scrape ${seconds(slowestScrapeMs)}`,
    );
    console.log(`farms exact/rebuilding by seconds after the loss: ${timeline.join(', ')}`);
    console.log(
      `agents: closes by code ${byKey(tally.closes)}; upgrade refusals ${byKey(tally.refusals)}; failed connects ${tally.connectErrors}`,
    );
  } finally {
    for (const child of busyChildren) child.kill('SIGKILL');
    for (const agent of fleet) agent.close();
    client.disconnect();
    await collector?.stop();
  }
}

export async function runRedisLoss(redis: RedisServer, options: RedisLossOptions): Promise<void> {
  for (const mode of options.modes) await lossOnce(redis, options, mode);
}
