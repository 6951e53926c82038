/**
 * RasLicenseCountDrift in a REAL Prometheus evaluating the shipped rule file, scraping a REAL collector
 * that polls the RAS broker simulator over HTTPS: the alert fires while rasmon and RAS disagree and
 * resolves once they agree. The rule's `for: 30m` is the only thing changed (to 0s), so the test waits
 * for an evaluation, not half an hour; promtool's cases (deploy/prometheus/tests) hold the 30 minutes.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, session } from './support/agent-client.js';
import { PrometheusServer } from './support/prometheus-server.js';
import { ALERT_RULES } from './support/prometheus-rules.js';
import { useRedis } from './support/use-redis.js';
import { RasBrokerSimulator, makeTestPki, sampleLicense, type TestPki } from './support/ras-broker-simulator.js';

const redis = useRedis();
const USERNAME = 'CORP\\svc-rasmon';
const PASSWORD = 'drift-Pa55word';
const ALERT = 'RasLicenseCountDrift';

let pki: TestPki;
let dir: string;
let broker: RasBrokerSimulator;
let collector: InProcessCollector;
let prometheus: PrometheusServer;
let agent: TestAgent;

/** The shipped rule file with the drift alert's `for` set to 0s; every other rule as shipped. */
function rulesWithoutDriftWait(): string {
  const doc = YAML.parse(readFileSync(ALERT_RULES, 'utf8')) as {
    groups: Array<{ rules: Array<{ alert?: string; for?: string }> }>;
  };
  const drift = doc.groups.flatMap((group) => group.rules).filter((rule) => rule.alert === ALERT);
  expect(drift, `${ALERT} in ${ALERT_RULES}`).toHaveLength(1);
  drift[0]!.for = '0s';
  const file = join(dir, 'rasmon-alerts.yml');
  writeFileSync(file, YAML.stringify(doc));
  return file;
}

async function driftAlerts(): Promise<Array<{ labels: Record<string, string>; state: string }>> {
  return (await prometheus.alerts()).filter((alert) => alert.labels.alertname === ALERT);
}

beforeAll(async () => {
  pki = makeTestPki();
  dir = mkdtempSync(join(tmpdir(), 'rasmon-drift-'));
  const passwordFile = join(dir, 'ras-password');
  writeFileSync(passwordFile, PASSWORD);
  broker = await RasBrokerSimulator.start({ pki, username: USERNAME, password: PASSWORD });
  // RAS still counts 4 of the 10 users rasmon sees (its count lags by up to 20 minutes).
  broker.license = sampleLicense(new Date(), { installedUsers: '50', usersLicenseInfo: '4' });
  collector = await InProcessCollector.start(
    rawConfig(redis.url, [
      {
        id: 'farm-a',
        seats: 50,
        ras: { url: broker.url, username: USERNAME, passwordFile, ca: pki.caFile, pollSeconds: 3600 },
      },
    ]),
  );
  agent = await TestAgent.connect(collector.url, 'token-farm-a');
  await agent.hello('farm-a', 'rdsh-1');
  await agent.snapshot(
    1,
    Array.from({ length: 10 }, (_, i) => session(`s${i}`, `CORP\\user${i}`)),
  );
  await collector.collector.pollBroker('farm-a');
  prometheus = await PrometheusServer.start(
    [`127.0.0.1:${collector.collector.address.port}`],
    [rulesWithoutDriftWait()],
  );
}, 60_000);

afterAll(async () => {
  await agent?.close();
  await prometheus?.stop();
  await collector?.stop();
  await broker?.stop();
  pki?.remove();
  rmSync(dir, { recursive: true, force: true });
});

describe(`${ALERT} in a real Prometheus`, () => {
  it('fires for the farm while rasmon counts 10 and RAS 4', async () => {
    await vi.waitFor(
      async () => {
        const firing = (await driftAlerts()).filter((alert) => alert.state === 'firing');
        expect(firing.map((alert) => alert.labels.farm)).toEqual(['farm-a']);
      },
      { timeout: 30_000, interval: 500 },
    );
    const drift = await prometheus.vector('max by (farm) (ras_license_count_drift_users)');
    expect(drift.map((sample) => [sample.metric.farm, sample.value[1]])).toEqual([['farm-a', '6']]);
  }, 40_000);

  it('resolves once RAS counts the same', async () => {
    broker.license = sampleLicense(new Date(), { installedUsers: '50', usersLicenseInfo: '10' });
    await collector.collector.pollBroker('farm-a');
    await vi.waitFor(async () => expect(await driftAlerts()).toEqual([]), { timeout: 30_000, interval: 500 });
    const drift = await prometheus.vector('max by (farm) (ras_license_count_drift_users)');
    expect(drift.map((sample) => sample.value[1])).toEqual(['0']);
  }, 40_000);
});
