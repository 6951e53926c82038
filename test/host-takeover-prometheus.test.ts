/**
 * The takeover of issue 22, alerted on in a REAL Prometheus evaluating the shipped rule file as is,
 * scraping a REAL collector: a holder of farm-a's token claims a host bound to another agent's key
 * with an empty snapshot — refused, the users unchanged, RasHostImpersonation firing; and on farm-b
 * (hostBinding none) two agents taking one host name from each other fire RasHostSupersedeBurst for
 * farm-b alone. promtool's cases (deploy/prometheus/tests) hold the windows and thresholds.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ErrorFrame } from '@rasmon/protocol';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, session } from './support/agent-client.js';
import { PrometheusServer } from './support/prometheus-server.js';
import { ALERT_RULES } from './support/prometheus-rules.js';
import { useRedis } from './support/use-redis.js';

const redis = useRedis();
let collector: InProcessCollector;
let prometheus: PrometheusServer;
const agents: TestAgent[] = [];

const newKey = () => randomBytes(32).toString('base64url');

async function connect(token: string): Promise<TestAgent> {
  const agent = await TestAgent.connect(collector.url, token);
  agents.push(agent);
  return agent;
}

async function firing(alertname: string): Promise<Array<Record<string, string>>> {
  return (await prometheus.alerts())
    .filter((alert) => alert.labels.alertname === alertname && alert.state === 'firing')
    .map((alert) => alert.labels);
}

/** The value Prometheus holds now for `expr`, once it has one. */
async function scraped(expr: string): Promise<string> {
  let value: string | undefined;
  await vi.waitFor(
    async () => {
      const [sample] = await prometheus.vector(expr);
      expect(sample).toBeDefined();
      value = sample!.value[1];
    },
    { timeout: 20_000, interval: 250 },
  );
  return value!;
}

beforeAll(async () => {
  collector = await InProcessCollector.start(
    rawConfig(redis.url, [
      { id: 'farm-a', seats: 5 },
      { id: 'farm-b', seats: 5, hostBinding: 'none' },
    ]),
  );
  prometheus = await PrometheusServer.start([`127.0.0.1:${collector.collector.address.port}`], [ALERT_RULES]);
  // The counters are scraped at 0 before anything happens, so their increase is seen.
  expect(await scraped('sum(rasmon_collector_agents_refused_total{reason="host_bound"})')).toBe('0');
  expect(await scraped('sum(rasmon_collector_supersedes_total{farm="farm-b"})')).toBe('0');
}, 60_000);

afterAll(async () => {
  for (const agent of agents) agent.socket.terminate();
  await prometheus?.stop();
  await collector?.stop();
});

describe('host takeover in a real Prometheus', () => {
  it('a hello for a bound host with another key is refused and fires RasHostImpersonation; the users stay', async () => {
    const real = await connect('token-farm-a');
    await real.hello('farm-a', 'rdsh-1', 'stream-1', undefined, newKey());
    await real.snapshot(
      1,
      Array.from({ length: 8 }, (_, i) => session(`s${i}`, `CORP\\user${i}`)),
    );
    const thief = await connect('token-farm-a');
    thief.send({ type: 'hello', farm: 'farm-a', host: 'rdsh-1', stream: 'stolen', hostKey: newKey() });
    expect((await thief.next<ErrorFrame>('error')).code).toBe('forbidden');
    // What the attack sent next never applies: the connection is closed.
    thief.send({ type: 'snapshot', seq: 1, at: Date.now(), sessions: [] });
    expect((await thief.closed).code).toBe(1008);

    await vi.waitFor(async () => expect(await firing('RasHostImpersonation')).toHaveLength(1), {
      timeout: 30_000,
      interval: 500,
    });
    expect((await firing('RasHostImpersonation'))[0]).toMatchObject({ severity: 'critical' });
    expect(await scraped('max by (farm) (ras_license_users{farm="farm-a"})')).toBe('8');
    expect(await scraped('max by (farm) (ras_license_overuse_users{farm="farm-a"})')).toBe('3');
    expect(await firing('RasHostSupersedeBurst')).toEqual([]);
  }, 60_000);

  it('two agents taking one host name from each other fire RasHostSupersedeBurst for their farm only', async () => {
    for (let i = 0; i < 8; i += 1) {
      const agent = await connect('token-farm-b');
      await agent.hello('farm-b', 'rdsh-9', `stream-${i}`, undefined, newKey());
    }
    await vi.waitFor(
      async () => expect((await firing('RasHostSupersedeBurst')).map((labels) => labels.farm)).toEqual(['farm-b']),
      { timeout: 30_000, interval: 500 },
    );
    expect((await firing('RasHostSupersedeBurst'))[0]).toMatchObject({ severity: 'warning' });
  }, 60_000);
});
