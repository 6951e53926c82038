/**
 * A planned collector restart under a fleet that reaches it from one address, as agents behind a
 * load balancer do: N agents (raw ws sockets, all from 127.0.0.1) connected and welcomed, then
 * the collector's real bin gets SIGTERM and is started again at once on the same port. In the
 * `balancer` variant each agent's upgrade carries `X-Forwarded-For` with an address of its own, as
 * an HTTP balancer adds it, and the collector trusts 127.0.0.1 (`http.trustedProxies`); in the
 * `proxy` variant each agent's connection comes from 127.0.0.2 and starts with a PROXY protocol v2
 * header naming an address of its own, as a TCP balancer sends it, and the collector trusts
 * 127.0.0.2 with `http.proxyProtocol`; in the others the collector sees one address, as behind a
 * TCP balancer without it. Each simulated agent
 * (bench/sim-agent.ts) sends its snapshot after every welcome and reconnects by the agent's own
 * policy, as the real agent does.
 *
 * Measures, from the SIGTERM: the time until every agent is welcomed again, the upgrade refusals by
 * status, the closes by code, from Redis twice a second (also while no collector runs) the hosts
 * without a lease in force and the users unverified, and from /metrics once a second the hosts with
 * `ras_agent_up` 0 and `ras_license_users_unverified`. The fleet is connected under raised limits (setting it up is not
 * the point); the collector that is restarted runs with the limits of the variant.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type RedisServer } from '../test/support/redis-server.js';
import { freePort } from '../test/support/free-port.js';
import type { Redis } from 'ioredis';
import { RedisKeys } from '@rasmon/collector';
import { section, sha256, startCollector, type RunningCollector } from './common.js';
import { eachLimited } from '@rasmon/protocol/kit';
import { SimAgent, byKey, farmId, newTally, token } from './sim-agent.js';

/**
 * `balancer`: X-Forwarded-For, default limits; `proxy`: a TCP balancer sending a PROXY v2 header,
 * default limits; `default`: one address, default limits; `raised`: one address, limits raised.
 */
export const RESTART_VARIANTS = ['balancer', 'proxy', 'default', 'raised'] as const;
export type RestartVariant = (typeof RESTART_VARIANTS)[number];

export interface RestartOptions {
  agents: number;
  farms: number;
  /** How long to wait for the fleet to be back before giving up, s. */
  giveUpSeconds: number;
  variants: readonly RestartVariant[];
}

/** The collector's defaults (collector/src/config/config.ts) for the per-address upgrade limit. */
const DEFAULT_UPGRADE_LIMITS = { upgradesPerSecondPerAddress: 50, upgradeBurstPerAddress: 500 };
const SESSIONS_PER_HOST = 5;
const TARGET_SECONDS = 30;
/** RasAgentDown fires after a host has been down this long (deploy/prometheus/rules/rasmon-alerts.yml). */
const AGENT_DOWN_FOR_SECONDS = 300;

const PREFIX = 'restart';
const KEYS = new RedisKeys(PREFIX);
/** From one /metrics body: hosts with ras_agent_up 0, and the sum of ras_license_users_unverified. */
function health(body: string): { down: number; unverified: number } {
  const down = body.match(/^ras_agent_up\{[^}]*\} 0$/gm)?.length ?? 0;
  let unverified = 0;
  for (const [, value] of body.matchAll(/^ras_license_users_unverified\{[^}]*\} (\S+)$/gm)) unverified += Number(value);
  return { down, unverified };
}

/**
 * From Redis, as no collector is needed for it: hosts whose lease is not in force by Redis's clock
 * (released, or lapsed even if no collector has applied the lapse yet), and users unverified.
 */
async function redisHealth(client: Redis, farms: number): Promise<{ down: number; unverified: number }> {
  const [seconds, micros] = (await client.time()) as [string | number, string | number];
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  const batch = client.pipeline();
  for (let f = 0; f < farms; f += 1) {
    const farm = KEYS.farm(farmId(f));
    batch.zcard(farm.seen);
    batch.zcount(farm.lease, `(${now}`, '+inf');
    batch.hget(farm.meta, 'unverified');
  }
  const replies = (await batch.exec()) ?? [];
  let down = 0;
  let unverified = 0;
  for (let f = 0; f < farms; f += 1) {
    const [known, leased, unverifiedUsers] = replies.slice(f * 3, f * 3 + 3).map(([, value]) => Number(value ?? 0));
    down += known! - leased!;
    unverified += unverifiedUsers!;
  }
  return { down, unverified };
}

function config(redisUrl: string, farms: number, limits: Record<string, number>, http?: Record<string, unknown>) {
  return {
    redis: { url: redisUrl, prefix: PREFIX },
    ...(http ? { http } : {}),
    limits,
    farms: Array.from({ length: farms }, (_, f) => ({
      id: farmId(f),
      seats: 100_000,
      license: 'primary',
      expires: '2030-01-01T00:00:00Z',
      agentTokensSha256: [sha256(token(f))],
    })),
  };
}

const count = (map: Map<number, number>, key: number) => map.get(key) ?? 0;
/** What one variant runs: the restarted collector's limits, and whether a balancer names each agent. */
interface Variant {
  label: string;
  limits: Record<string, number>;
  /** The collector trusts the bench's own address (127.0.0.1) as a balancer sending X-Forwarded-For. */
  forwarded: boolean;
  /** The agents connect from 127.0.0.2, trusted as a balancer sending a PROXY v2 header. */
  proxy?: boolean;
}

function variant(name: RestartVariant, agents: number): Variant {
  if (name === 'balancer')
    return {
      label: 'behind an HTTP balancer (X-Forwarded-For, http.trustedProxies), default limits',
      limits: DEFAULT_UPGRADE_LIMITS,
      forwarded: true,
    };
  if (name === 'proxy')
    return {
      label: 'behind a TCP balancer (PROXY protocol v2, http.proxyProtocol), default limits',
      limits: DEFAULT_UPGRADE_LIMITS,
      forwarded: false,
      proxy: true,
    };
  if (name === 'default')
    return { label: 'one address, default limits', limits: DEFAULT_UPGRADE_LIMITS, forwarded: false };
  return {
    label: 'one address, limits raised for it',
    limits: {
      upgradesPerSecondPerAddress: Math.max(50, Math.ceil(agents / 10)),
      upgradeBurstPerAddress: Math.max(500, agents),
    },
    forwarded: false,
  };
}

/** The address the balancer names for agent `i` (10.0.0.0/8, one each). */
const agentAddress = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/** The simulated TCP balancer's address, the one the `proxy` variant trusts. */
const PROXY_FROM = '127.0.0.2';
const PROXY_V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A PROXY protocol v2 header, PROXY over TCP4, from `source` to 127.0.0.1:`port`. */
function proxyV2(source: string, port: number): Buffer {
  const header = Buffer.alloc(28);
  PROXY_V2_SIGNATURE.copy(header);
  header.writeUInt8(0x21, 12);
  header.writeUInt8(0x11, 13);
  header.writeUInt16BE(12, 14);
  source.split('.').forEach((octet, i) => header.writeUInt8(Number(octet), 16 + i));
  [127, 0, 0, 1].forEach((octet, i) => header.writeUInt8(octet, 20 + i));
  header.writeUInt16BE(40_000, 24);
  header.writeUInt16BE(port, 26);
  return header;
}

/** One restart of one variant. */
async function restartOnce(
  redis: RedisServer,
  options: RestartOptions,
  { label, limits, forwarded, proxy }: Variant,
): Promise<void> {
  const { agents: total, farms } = options;
  section(
    `restart, ${label}: ${total} agents, upgradesPerSecondPerAddress ${limits.upgradesPerSecondPerAddress}, upgradeBurstPerAddress ${limits.upgradeBurstPerAddress}`,
  );
  const client = redis.client();
  await client.flushall();
  const port = await freePort();
  const tally = newTally();
  const trusted = forwarded
    ? { trustedProxies: ['127.0.0.1'] }
    : proxy
      ? { trustedProxies: [`${PROXY_FROM}/32`], proxyProtocol: true }
      : undefined;
  let collector: RunningCollector = await startCollector(
    config(redis.url, farms, { upgradesPerSecondPerAddress: 100_000, upgradeBurstPerAddress: 1_000_000 }, trusted),
    port,
  );
  const fleet = Array.from(
    { length: total },
    (_, i) =>
      new SimAgent(collector.url, i % farms, Math.floor(i / farms), tally, {
        sessions: SESSIONS_PER_HOST,
        ...(forwarded ? { forwardedFor: agentAddress(i) } : {}),
        ...(proxy ? { proxyFrom: PROXY_FROM, proxyHeader: proxyV2(agentAddress(i), port) } : {}),
      }),
  );
  let sampling = true;
  let redisSampler: Promise<void> = Promise.resolve();
  try {
    await eachLimited(fleet, 100, (agent) => agent.setUp());
    await sleep(2000);
    tally.closes.clear();
    for (const agent of fleet) agent.welcomedAt = 0;

    const t0 = Date.now();
    // Redis, from the SIGTERM on: between the two collectors there is no /metrics to read.
    let redisMaxDown = 0;
    let redisMaxUnverified = 0;
    let redisSamples = 0;
    redisSampler = (async () => {
      while (sampling) {
        const seen = await redisHealth(client, farms).catch(() => undefined);
        if (seen) {
          redisSamples += 1;
          redisMaxDown = Math.max(redisMaxDown, seen.down);
          redisMaxUnverified = Math.max(redisMaxUnverified, seen.unverified);
        }
        await sleep(500);
      }
    })();
    await collector.stop();
    const stoppedMs = Date.now() - t0;
    collector = await startCollector(config(redis.url, farms, limits, trusted), port);
    const readyMs = Date.now() - t0;

    let maxDown = 0;
    let maxUnverified = 0;
    let lastDownAt = 0;
    let back = 0;
    const giveUpAt = t0 + options.giveUpSeconds * 1000;
    while (Date.now() < giveUpAt) {
      const body = await fetch(`${collector.url}/metrics`).then(
        (r) => r.text(),
        () => '',
      );
      const seen = health(body);
      maxDown = Math.max(maxDown, seen.down);
      maxUnverified = Math.max(maxUnverified, seen.unverified);
      if (seen.down > 0 || seen.unverified > 0) lastDownAt = Date.now();
      back = fleet.filter((agent) => agent.welcomedAt > t0).length;
      if (back === total && seen.down === 0 && seen.unverified === 0) break;
      await sleep(1000);
    }
    sampling = false;
    await redisSampler;
    const lastBackMs = Math.max(...fleet.map((agent) => agent.welcomedAt)) - t0;
    const allBack = back === total;
    const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(
      `collector drained and exited in ${seconds(stoppedMs)}; the new one was ready ${seconds(readyMs)} after SIGTERM`,
    );
    console.log(
      allBack
        ? `all ${total} agents welcomed again ${seconds(lastBackMs)} after SIGTERM (target ≤ ${TARGET_SECONDS} s: ${lastBackMs <= TARGET_SECONDS * 1000 ? 'met' : 'missed'})`
        : `only ${back} of ${total} agents back after ${options.giveUpSeconds} s (target ≤ ${TARGET_SECONDS} s: missed)`,
    );
    const addresses = forwarded || proxy ? total : 1;
    const perAddress = Math.ceil(total / addresses);
    const floorSeconds = Math.max(
      0,
      (perAddress - limits.upgradeBurstPerAddress!) / limits.upgradesPerSecondPerAddress!,
    );
    console.log(
      `  the upgrade limit alone lets ${perAddress} agent(s) per address (${addresses} address(es)) in no sooner than ${floorSeconds.toFixed(0)} s (burst ${limits.upgradeBurstPerAddress}, then ${limits.upgradesPerSecondPerAddress}/s)`,
    );
    console.log(
      `upgrade refusals: 429 ${count(tally.refusals, 429)}, 503 ${count(tally.refusals, 503)} (by status: ${byKey(tally.refusals)}); connection errors ${tally.connectErrors}`,
    );
    console.log(`closes by code: ${byKey(tally.closes)}`);
    console.log(
      `hosts without a lease in force in Redis (${redisSamples} samples from SIGTERM, also between the collectors): at most ${redisMaxDown}; users unverified at most ${redisMaxUnverified}`,
    );
    console.log(
      `hosts with ras_agent_up 0 on the new collector: at most ${maxDown}, the last seen ${lastDownAt ? seconds(lastDownAt - t0) : '-'} after SIGTERM; users unverified at most ${maxUnverified}`,
    );
    const downSeen = maxDown > 0 || maxUnverified > 0 || redisMaxDown > 0 || redisMaxUnverified > 0;
    const downFor = lastDownAt ? lastDownAt - t0 : 0;
    console.log(
      `  host down for a planned restart: ${downSeen ? 'seen (a lease lapsed before its agent was back)' : 'never seen (target: none)'}; RasAgentDown (for: ${AGENT_DOWN_FOR_SECONDS / 60}m) ${downFor < AGENT_DOWN_FOR_SECONDS * 1000 ? 'would not fire' : 'would fire'}`,
    );
  } finally {
    sampling = false;
    await redisSampler;
    for (const agent of fleet) agent.close();
    client.disconnect();
    await collector.stop();
  }
}

/**
 * The restart behind an HTTP balancer that names each agent (X-Forwarded-For, trusted), then from
 * one address as a TCP balancer presents them, with the default limits and with the limits raised
 * as an operator behind such a balancer would raise them.
 */
export async function runRestart(redis: RedisServer, options: RestartOptions): Promise<void> {
  for (const name of options.variants) {
    if (name === 'raised') {
      const { upgradeBurstPerAddress: burst, upgradesPerSecondPerAddress: rate } = DEFAULT_UPGRADE_LIMITS;
      console.log(
        `note: from one address with the default limits at most ${burst + rate * TARGET_SECONDS} agents (burst ${burst} + ${rate}/s × ${TARGET_SECONDS} s) can be back within ${TARGET_SECONDS} s, however they retry: behind a TCP balancer the limits are raised, as here:`,
      );
    }
    await restartOnce(redis, options, variant(name, options.agents));
  }
}
