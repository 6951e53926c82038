/**
 * The flood part: another farm's acks while one farm's hosts flood the collector together. Eight
 * connections of one farm cycle 2,000-session snapshots as fast as the collector takes them, each
 * within its own per-connection limits; the farm's budgets (limits.bytesPerSecondPerFarm,
 * applyMillisecondsPerSecondPerFarm, defaults) hold it back. A probe agent of another farm
 * (bench/probe.ts, its own process) times its acks without and with the flood. Target: its ack p99
 * within 2x of none.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type RedisServer } from '../test/support/redis-server.js';
import { freePort } from '../test/support/free-port.js';
import { TestAgent } from '../test/support/agent-client.js';
import { latencySummary, quantile, section, sha256, startCollector } from './common.js';
import { Probe } from './fleet.js';

export interface FloodOptions {
  /**
   * Seconds per phase. The probe sends 50 frames a second: in 10 s its p99 is its fifth-worst ack,
   * which one stall of the machine moves; 30 s gives it about 1,500 acks per phase.
   */
  seconds: number;
  /**
   * The flooding farm's quotas: `raised` out of the way (the budgets alone hold it back), or `sized`
   * at their defaults for a farm of 1,600 seats, one whose quotas could hold the 16,000 sessions it
   * cycles (most of its snapshots, every user new, are then refused whole by maxNewUsersPerMinute).
   */
  quotas: 'raised' | 'sized';
}

const FLOODERS = 8;
const SESSIONS = 2000;

export async function runFlood(redis: RedisServer, options: FloodOptions): Promise<void> {
  const { seconds, quotas } = options;
  section(
    `flood: another farm's acks while ${FLOODERS} hosts of one farm cycle ${SESSIONS}-session snapshots (quotas ${quotas})`,
  );
  const client = redis.client();
  await client.flushall();
  const farm = (id: string, sizing: Record<string, number>) => ({
    id,
    seats: 10,
    license: 'primary',
    expires: '2030-01-01T00:00:00Z',
    agentTokensSha256: [sha256(`token-${id}`)],
    ...sizing,
  });
  // Raised: the flood stands for a farm large enough to hold what it cycles, held back by the
  // budgets alone (at 10 seats its quotas would refuse most of it at once).
  const flooding = quotas === 'raised' ? { maxSessions: 100_000, maxNewUsersPerMinute: 100_000 } : { seats: 1600 };
  const collector = await startCollector(
    { redis: { url: redis.url, prefix: 'flood' }, farms: [farm('flood', flooding), farm('probe', {})] },
    await freePort(),
  );
  const flooders: TestAgent[] = [];
  let probe: Probe | undefined;
  try {
    for (let i = 0; i < FLOODERS; i++) {
      const agent = await TestAgent.connect(collector.url, 'token-flood');
      await agent.hello('flood', `rdsh-${i}`);
      flooders.push(agent);
    }
    probe = await Probe.connect(collector.url, 'token-probe', 'probe');
    probe.start();
    await sleep(seconds * 1000);
    const quiet = await probe.stop();
    let flooding = true;
    let snapshots = 0;
    const loops = flooders.map(async (agent, i) => {
      for (let seq = 1; flooding; seq++) {
        const sessions = Array.from({ length: SESSIONS }, (_, s) => ({
          id: `${s}`,
          user: `corp\\made-up-${seq % 2}-${i}-${s}`,
          admin: false,
          kind: 'desktop' as const,
          via: 'ras' as const,
          state: 'active' as const,
          since: 1,
        }));
        // Held back by the farm's budget, an ack may come late: the flood only needs to go on.
        const acked = await agent.snapshot(seq, sessions).then(
          () => true,
          () => false,
        );
        if (acked) snapshots++;
      }
    });
    probe.start();
    await sleep(seconds * 1000);
    const flooded = await probe.stop();
    flooding = false;
    await Promise.all(loops);
    const metrics = await fetch(`${collector.url}/metrics`).then((r) => r.text());
    const byReason = (name: string) =>
      [...metrics.matchAll(new RegExp(`^${name}\\{farm="flood",reason="(\\w+)"\\} (\\d+)`, 'gm'))]
        .map(([, reason, n]) => `${reason} ${n}`)
        .join(', ');
    const throttled = byReason('rasmon_collector_farm_throttled_total');
    // Sessions refused over the quotas (a snapshot refused whole counts every session it listed).
    const refused = byReason('rasmon_collector_farm_quota_refused_total');
    const p99 = (latencies: number[]) =>
      quantile(
        [...latencies].sort((a, b) => a - b),
        0.99,
      );
    console.log(`no flood: probe ack ${latencySummary(quiet.latencies)}`);
    console.log(`flood: probe worst ack per second (ms): ${flooded.worstPerSecond.join(' ')}`);
    console.log(
      `flood (${snapshots} snapshots of ${SESSIONS} sessions acked in ${seconds} s; farm throttled: ${throttled}; sessions refused over quotas: ${refused}): probe ack ${latencySummary(flooded.latencies)}`,
    );
    const [none, during] = [p99(quiet.latencies), p99(flooded.latencies)];
    console.log(
      `probe ack p99: ${none.toFixed(1)} ms without, ${during.toFixed(1)} ms with the flood (${during <= 2 * Math.max(none, 1) ? 'within 2x: met' : 'over 2x: NOT met'}); target: within 2x`,
    );
  } finally {
    await probe?.close();
    await Promise.all(flooders.map((agent) => agent.close()));
    client.disconnect();
    await collector.stop();
  }
}
