/**
 * The dashboard and the alert rules against a REAL Prometheus (`prometheus` from the PATH) scraping two
 * REAL collectors that share one Redis and are fed by simulated hosts over real WebSockets.
 *
 * Farms: farm-a (5 seats; hosts rdsh-a1 and rdsh-a3 on collector 1, rdsh-a2 on collector 2, all three
 * listed in its expectedHosts) and
 * farm-b (100 seats, a license expiring in 10 days, 8 weeks of daily peaks rising to 75 that forecast it
 * full in 25 days; two simulated hosts, one per collector; its RAS broker,
 * the simulator over HTTPS, reports its license with a grace running and lists no VDI session, so the
 * broker series exist without changing the farm's users).
 * rdsh-a3's agent leaves, so the farm has a stale host and an unverified user; one upgrade is
 * refused for a bad token; then farm-a is pushed from 4 to 7 users.
 *
 * How expressions are run (instant queries, /api/v1/query, at the time of the test):
 * - Dashboard expressions, with Grafana's variables substituted as a dashboard showing every farm
 *   would send them: `$farm` / `${farm}` → `.*` (the variable's allValue; a single selected farm,
 *   as in the double-counting check, is substituted by its name), `$__rate_interval` → `1m`
 *   (Grafana's floor of 4 scrape intervals is 4 s here; 1m keeps a few dozen samples),
 *   `$__interval` → `15s`, `$__range` → `1h`, `$job` → `rasmon-collector`. Any other `$…` left
 *   over fails the test. Each must answer `status: success` AND return at least one series: the
 *   scenario is built so that every panel has something to show (overuse, a grace, a stale host,
 *   a refused upgrade, an admin desktop, an agent version).
 * - Rule expressions (every `expr` of every rule, recording and alerting, of every
 *   deploy/prometheus/rules/*.yml, copied into Prometheus's config at test time): each must answer
 *   `status: success`. It must also return data, unless it is a condition that is legitimately
 *   false now (no deactivation risk, no expired license, every collector up…): then every metric
 *   selector in it (`ras_*`, `rasmon_*`, `up` or a recorded `farm:…`/`threshold:…` series, with its label matchers as written) must return data on its
 *   own, so the condition was evaluated over real, correctly spelled and labelled series rather
 *   than over nothing.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';
import { evaluateUsage, normalizeUser, type Session } from '@rasmon/protocol';
import { SessionSimulator, simulateFleet } from '@rasmon/agent';
import { useRedis } from './support/use-redis.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, UpgradeRefused, upsert } from './support/agent-client.js';
import { PrometheusServer, type Sample } from './support/prometheus-server.js';
import { ownClockOffsetMs } from './support/fake-clock.js';
import { RasBrokerSimulator, makeTestPki, sampleLicense, type TestPki } from './support/ras-broker-simulator.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const ROOT = new URL('..', import.meta.url).pathname;
const RULES_DIR = join(ROOT, 'deploy/prometheus/rules');
const DASHBOARD = join(ROOT, 'deploy/grafana/dashboards/rasmon.json');
const JOB = 'rasmon-collector';
const AGENT_VERSION = 'rasmon-agent/0.1.0-e2e';
/** Longest `for` of the overuse alert this suite can wait out (it stays well under a minute). */
const MAX_OVERUSE_FOR_SECONDS = 30;

/**
 * The agent's source health, which the dashboard shows while the collector may not export it yet (no
 * agent of this scenario reports a session source). A dashboard expression reading one of these may
 * return nothing only while Prometheus has no series of that name at all.
 */
const SOURCE_HEALTH_SERIES = ['ras_agent_source_up', 'ras_agent_source_last_success_timestamp_seconds'];
/** Series an agent exports on its own /metrics, not the collector. */
const AGENT_SERIES = /^rasmon_agent_/;

/** Grafana's variables, as a dashboard showing every farm sends them (see the header). */
function substitute(expr: string, farm = '.*'): string {
  const out = expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('${__rate_interval}', '1m')
    .replaceAll('$__interval', '15s')
    .replaceAll('$__range', '1h')
    .replace(/\$\{farm(?::regex)?\}|\$farm\b/g, farm)
    .replace(/\$\{job\}|\$job\b/g, JOB);
  if (out.includes('$')) throw new Error(`unsubstituted variable in ${out}`);
  return out;
}

/** `ras_*`, `up` and recorded (`farm:…`, `threshold:…`) selectors of an expression with their matchers (`name{…}`). */
function selectorsIn(expr: string): string[] {
  const found = new Set<string>();
  for (const match of expr.matchAll(
    /(?<![\w:])((?:ras|rasmon)_[a-z0-9_]+|up|(?:farm|threshold|rasmon):[a-z0-9_:]+)(?![\w:])\s*(\{[^}]*\})?(?!\s*\()/g,
  )) {
    const quotesBefore = expr.slice(0, match.index).split('"').length - 1;
    if (quotesBefore % 2 === 1) continue; // inside a label value
    found.add(`${match[1]}${match[2] ?? ''}`);
  }
  return [...found];
}

/** A Prometheus duration (`0m`, `90s`, `1h30m`) in seconds. */
function durationSeconds(text: string | undefined): number {
  if (!text) return 0;
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
  let total = 0;
  const rest = String(text).replace(/(\d+)(ms|s|m|h|d|w|y)/g, (_, n: string, unit: string) => {
    total += Number(n) * units[unit]!;
    return '';
  });
  if (rest.trim() !== '') throw new Error(`not a duration: ${text}`);
  return total;
}

interface RuleSpec {
  file: string;
  group: string;
  name: string;
  kind: 'alert' | 'record';
  expr: string;
  for: number;
}

function readRules(files: string[]): RuleSpec[] {
  return files.flatMap((file) => {
    const doc = YAML.parse(readFileSync(file, 'utf8')) as {
      groups?: Array<{
        name: string;
        rules?: Array<{ alert?: string; record?: string; expr: string | number; for?: string }>;
      }>;
    };
    return (doc?.groups ?? []).flatMap((group) =>
      (group.rules ?? []).map((rule) => ({
        file,
        group: group.name,
        name: rule.alert ?? rule.record ?? '?',
        kind: rule.alert ? ('alert' as const) : ('record' as const),
        expr: String(rule.expr),
        for: durationSeconds(rule.for),
      })),
    );
  });
}

/** One simulated host speaking to one collector; holds its seq. */
class Host {
  seq = 0;
  private constructor(
    readonly farm: string,
    readonly sim: SessionSimulator,
    readonly agent: TestAgent,
  ) {}

  static async connect(collector: InProcessCollector, farm: string, sim: SessionSimulator): Promise<Host> {
    const agent = await TestAgent.connect(collector.url, `token-${farm}`);
    const welcome = await agent.hello(farm, sim.host, `stream-${sim.host}`, AGENT_VERSION);
    expect(welcome.ack).toBe(0);
    expect(welcome.features).toContain('status');
    // Its session source reads fine (no answer: the first snapshot's ack follows it).
    agent.send({ type: 'status', source: 'command', ok: true, lastListAt: Date.now() });
    return new Host(farm, sim, agent);
  }

  async snapshot(): Promise<void> {
    this.seq += 1;
    const ack = await this.agent.snapshot(this.seq, this.sim.sessions());
    expect(ack).toEqual({ type: 'ack', seq: this.seq });
  }

  /** Logs users on (active RAS desktops unless told otherwise) and sends them as one events frame. */
  async logon(users: string[]): Promise<void> {
    const events = users.map((user) => upsert((this.seq += 1), this.sim.logon(user)));
    const ack = await this.agent.events(events);
    expect(ack).toEqual({ type: 'ack', seq: this.seq });
  }
}

/** The truth of a farm by the reference model (docs/design.md §2), from the simulators' sessions. */
function truth(seats: number, hosts: Array<{ sim: SessionSimulator; live: boolean }>) {
  return evaluateUsage({
    seats,
    countDisconnected: true,
    hosts: hosts.map(({ sim, live }) => ({
      host: sim.host,
      live,
      retired: false,
      connections: sim.sessions().map((s: Session) => ({ ...s, user: normalizeUser(s.user) })),
    })),
  });
}

/** A host that only ever does what the test tells it (no churn), starting empty. */
function quietHost(host: string, seed: number): SessionSimulator {
  return new SessionSimulator({
    seed,
    host,
    users: [],
    admins: ['CORP\\admin01'],
    targetSessions: 1,
    logonsPerMinute: 0,
    initialSessions: 0,
    startMs: Date.now() - 60_000,
  });
}

const value = (samples: Sample[]) => samples.map((sample) => Number(sample.value[1]));

describe('the dashboard and the alert rules on a real Prometheus scraping two collectors', () => {
  const redis = useRedis();
  const collectors: InProcessCollector[] = [];
  let prometheus: PrometheusServer;
  let ruleFiles: string[] = [];
  let rules: RuleSpec[] = [];
  const agents: TestAgent[] = [];
  let a1: Host;
  let a2: Host;
  let a3: Host;
  let fleetB: Array<{ sim: SessionSimulator; live: boolean }> = [];
  let pki: TestPki | undefined;
  let broker: RasBrokerSimulator | undefined;
  let brokerDir: string | undefined;

  beforeAll(async () => {
    // Read at test time: the rules as they are now in the tree. None is a failure below, not a pass.
    ruleFiles = existsSync(RULES_DIR)
      ? readdirSync(RULES_DIR)
          .filter((name) => name.endsWith('.yml'))
          .sort()
          .map((name) => join(RULES_DIR, name))
      : [];
    rules = readRules(ruleFiles);
    // A maxmemory, as production sets one: the memory panel and rules read its ratio.
    const admin = redis.server.client();
    await admin.config('SET', 'maxmemory', String(1024 ** 3));
    admin.disconnect();
    pki = makeTestPki();
    brokerDir = mkdtempSync(join(tmpdir(), 'rasmon-e2e-broker-'));
    writeFileSync(join(brokerDir, 'password'), 'e2e-Pa55word');
    broker = await RasBrokerSimulator.start({ pki, username: 'CORP\\svc-rasmon', password: 'e2e-Pa55word' });
    broker.license = sampleLicense(new Date(), { installedUsers: '100', gracePeriodDaysLeft: '20' });
    const raw = rawConfig(redis.url, [
      { id: 'farm-a', seats: 5, expectedHosts: ['rdsh-a1', 'rdsh-a2', 'rdsh-a3'] },
      {
        id: 'farm-b',
        seats: 100,
        expires: new Date(Date.now() + 10 * 86_400_000).toISOString(),
        ras: {
          url: broker.url,
          username: 'CORP\\svc-rasmon',
          passwordFile: join(brokerDir, 'password'),
          ca: pki.caFile,
          sessions: ['vdi'],
          pollSeconds: 10,
        },
      },
    ]);
    // farm-b's last 8 weeks of closed days, one user more each day up to 75 yesterday: its forecast
    // (the 100 seats in 25 days) for the forecast panel and RasLicenseFullSoon's rules.
    const prefix = (raw.redis as { prefix: string }).prefix;
    const today = Math.floor(Date.now() / 86_400_000);
    const writer = redis.server.client();
    for (let ago = 56; ago >= 1; ago -= 1)
      await writer.hset(`${prefix}:{farm-b}:peaks`, String(today - ago), `${76 - ago},,100,0,0,0`);
    writer.disconnect();
    // One raw config (one Redis prefix) for both: they export the same farm series.
    collectors.push(await InProcessCollector.start(raw), await InProcessCollector.start(raw));
    const targets = collectors.map((c) => `127.0.0.1:${c.collector.address.port}`);
    prometheus = await PrometheusServer.start(targets, ruleFiles);
    // Ready is not scraping yet: Prometheus applies its targets a few seconds after start.
    await vi.waitFor(async () => expect(value(await prometheus.vector(`up{job="${JOB}"}`))).toEqual([1, 1]), {
      timeout: 20_000,
    });

    // A refused upgrade (wrong token), early enough for increase() over 1m to have two samples.
    await expect(TestAgent.connect(collectors[0]!.url, 'not-a-token')).rejects.toBeInstanceOf(UpgradeRefused);

    // farm-b: a simulated fleet, one host per collector, a snapshot, then ten simulated minutes later another.
    const fleet = simulateFleet({
      seed: 20240611,
      hosts: 2,
      users: 60,
      admins: 2,
      hostPrefix: 'rdsh-b',
      startMs: Date.now() - 3_600_000,
    });
    const bHosts = await Promise.all(
      fleet.map(({ simulator }, i) => Host.connect(collectors[i % 2]!, 'farm-b', simulator)),
    );
    for (const host of bHosts) await host.snapshot();
    for (const host of bHosts) {
      host.sim.advanceTo(host.sim.now + 600_000);
      await host.snapshot();
    }
    fleetB = bHosts.map((host) => ({ sim: host.sim, live: true }));

    // farm-a: 4 users within 5 seats over three hosts, an exempt admin desktop, a user on two hosts.
    a1 = await Host.connect(collectors[0]!, 'farm-a', quietHost('rdsh-a1', 1));
    a2 = await Host.connect(collectors[1]!, 'farm-a', quietHost('rdsh-a2', 2));
    a3 = await Host.connect(collectors[0]!, 'farm-a', quietHost('rdsh-a3', 3));
    agents.push(...[...bHosts, a1, a2, a3].map((host) => host.agent));
    a1.sim.logon('CORP\\user1');
    a1.sim.logon('CORP\\user2', { kind: 'app' });
    a1.sim.logon('CORP\\admin01', { via: 'rdp' });
    a2.sim.logon('CORP\\user3', { state: 'disconnected' });
    a2.sim.logon('corp\\USER1', { kind: 'app' });
    a3.sim.logon('CORP\\user4');
    for (const host of [a1, a2, a3]) await host.snapshot();
    // rdsh-a3's agent leaves: the host is stale, its user4 still counts but is unverified.
    await a3.agent.close();
  });

  afterAll(async () => {
    await Promise.allSettled(agents.map((agent) => agent.close()));
    await prometheus?.stop();
    await Promise.allSettled(collectors.map((c) => c.stop()));
    await broker?.stop();
    pki?.remove();
    if (brokerDir) rmSync(brokerDir, { recursive: true, force: true });
  });

  const farmA = () =>
    truth(5, [
      { sim: a1.sim, live: true },
      { sim: a2.sim, live: true },
      { sim: a3.sim, live: false },
    ]);

  /**
   * Pushes farm-a from 4 to 7 users (5 seats), once, and waits until Prometheus has scraped it.
   * Every test from the overuse one on starts with it, so none depends on an earlier one passing.
   */
  let overused: Promise<void> | undefined;
  const pushOverSeats = async () => {
    overused ??= a1.logon(['CORP\\user5', 'CORP\\user6', 'CORP\\user7']);
    await overused;
    expect(farmA()).toMatchObject({ users: 7, overuseUsers: 2 });
  };
  const scraped = () =>
    expect
      .poll(async () => value(await prometheus.vector('max by (farm) (ras_license_overuse_users{farm="farm-a"})')), {
        timeout: 15_000,
      })
      .toEqual([2]);

  /** The alerting rules that watch ras_license_overuse_users, shortest `for` first. */
  const overuseAlerts = () =>
    rules
      .filter((rule) => rule.kind === 'alert' && /\bras_license_overuse_users\b/.test(rule.expr))
      .sort((a, b) => a.for - b.for);

  it('loads every rule file of deploy/prometheus/rules (and there must be some)', async () => {
    expect(ruleFiles, `no *.yml rule files in ${RULES_DIR}`).not.toEqual([]);
    expect(rules.length, 'rules in the rule files').toBeGreaterThan(0);
    const answer = await prometheus.api<{
      data: { groups: Array<{ file: string; rules: Array<{ name: string; health: string; lastError?: string }> }> };
    }>('/api/v1/rules');
    const loaded = answer.data.groups.flatMap((group) => group.rules);
    expect(loaded.map((rule) => rule.name).sort()).toEqual(rules.map((rule) => rule.name).sort());
    await vi.waitFor(
      async () => {
        const now = (await prometheus.api<typeof answer>('/api/v1/rules')).data.groups.flatMap((group) => group.rules);
        expect(
          now.filter((rule) => rule.health !== 'ok'),
          'rules not evaluated ok',
        ).toEqual([]);
      },
      { timeout: 10_000 },
    );
  });

  it('keeps the overuse alert quiet while farm-a is within its seats', async () => {
    expect(overused, 'runs before farm-a goes over its seats').toBeUndefined();
    expect(farmA().users).toBe(4);
    const alerts = overuseAlerts();
    expect(
      alerts.map((rule) => rule.name),
      'an alert rule whose expr reads ras_license_overuse_users',
    ).not.toEqual([]);
    // Prometheus has scraped the 4 users and evaluated the rules since.
    await expect
      .poll(async () => value(await prometheus.vector('max by (farm) (ras_license_users{farm="farm-a"})')), {
        timeout: 15_000,
      })
      .toEqual([4]);
    await sleep(2500);
    const firing = (await prometheus.alerts()).filter((alert) =>
      alerts.some((rule) => rule.name === alert.labels.alertname),
    );
    expect(firing).toEqual([]);
  });

  it('fires the overuse alert for farm-a, and only for farm-a, once it goes past its seats', async () => {
    const started = Date.now();
    await pushOverSeats();
    const [alert] = overuseAlerts();
    expect(alert, 'an alert rule whose expr reads ras_license_overuse_users').toBeDefined();
    expect(alert!.for, `${alert!.name} waits ${alert!.for} s before firing`).toBeLessThanOrEqual(
      MAX_OVERUSE_FOR_SECONDS,
    );
    const firing = await vi.waitFor(
      async () => {
        const found = (await prometheus.alerts()).filter(
          (a) => a.labels.alertname === alert!.name && a.state === 'firing',
        );
        expect(found.map((a) => a.labels.farm)).toContain('farm-a');
        return found;
      },
      { timeout: (alert!.for + 20) * 1000 },
    );
    expect(
      firing.map((a) => a.labels.farm),
      'one alert per farm, never one per collector',
    ).toEqual(['farm-a']);
    expect(Date.now() - started).toBeLessThan((alert!.for + 20) * 1000);
  });

  it('counts each farm once although both collectors export it (the dashboard users query)', async () => {
    await pushOverSeats();
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      panels: Array<{ title?: string; targets?: Array<{ expr: string }> }>;
    };
    const usersExpr = dashboard.panels.find((panel) => panel.title === 'Users in use')?.targets?.[0]?.expr;
    expect(usersExpr, 'the "Users in use" panel').toBeDefined();
    const expected = { 'farm-a': farmA().users, 'farm-b': truth(100, fleetB).users };
    expect(expected['farm-a']).toBe(7);
    for (const [farm, users] of Object.entries(expected)) {
      // The raw series really come from both collectors (once both have been scraped since the
      // last change): a sum would count the farm twice.
      await vi.waitFor(
        async () => {
          expect(value(await prometheus.vector(`count(ras_license_users{farm="${farm}"})`))).toEqual([2]);
          expect(value(await prometheus.vector(`sum(ras_license_users{farm="${farm}"})`))).toEqual([2 * users]);
        },
        { timeout: 15_000 },
      );
      expect(value(await prometheus.vector(substitute(usersExpr!, farm)))).toEqual([users]);
    }
    // The panels beside it agree with the truth too.
    await vi.waitFor(
      async () => {
        expect(value(await prometheus.vector('max by (farm) (ras_license_overuse_users{farm="farm-a"})'))).toEqual([2]);
        expect(value(await prometheus.vector('max by (farm) (ras_license_users_unverified{farm="farm-a"})'))).toEqual([
          farmA().unverifiedUsers,
        ]);
        expect(value(await prometheus.vector('max by (farm) (ras_connections_exempt{farm="farm-a"})'))).toEqual([
          farmA().exemptConnections,
        ]);
      },
      { timeout: 10_000 },
    );
    expect(farmA().unverifiedUsers).toBe(1);
  });

  it('runs every dashboard expression: it parses and returns data', async () => {
    type Panel = { id: number; title?: string; targets?: Array<{ expr: string; refId: string }>; panels?: Panel[] };
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
    const panels = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
    const exprs = panels.flatMap((panel) =>
      (panel.targets ?? []).map((target) => ({
        where: `panel ${panel.id} "${panel.title}" ${target.refId}`,
        expr: substitute(target.expr),
      })),
    );
    expect(exprs.length).toBeGreaterThan(20);
    await pushOverSeats();
    await scraped();
    // Give rate() and increase() over 1m a few scrapes of the latest activity.
    await sleep(2000);
    const failures: string[] = [];
    for (const { where, expr } of exprs) {
      const answer = await prometheus.query(expr);
      if (answer.status !== 'success') failures.push(`${where}: ${expr}: ${answer.error}`);
      else if ((answer.data!.result as Sample[]).length === 0) {
        const pending: string[] = [];
        for (const name of SOURCE_HEALTH_SERIES) {
          if (new RegExp(`\\b${name}\\b`).test(expr) && (await prometheus.vector(`count(${name})`)).length === 0)
            pending.push(name);
        }
        if (pending.length === 0) failures.push(`${where}: ${expr}: no data`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('shows one row per farm in the overview table, with the numbers of the scenario', async () => {
    type Panel = { type: string; title?: string; targets?: Array<{ expr: string; refId: string }> };
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
    const table = dashboard.panels.find((panel) => panel.type === 'table' && panel.title === 'Farms')!;
    expect(table?.targets?.length).toBe(9);
    await pushOverSeats();
    await scraped();
    const rows: Record<string, Record<string, number>> = {};
    for (const target of table.targets!) {
      const samples = await prometheus.vector(substitute(target.expr));
      for (const sample of samples) expect(Object.keys(sample.metric), `${target.refId} labels`).toEqual(['farm']);
      const farms = samples.map((sample) => sample.metric.farm).sort();
      // Grace left exists only for a farm whose overuse grace has started.
      expect(farms, target.refId).toEqual(target.refId === 'E' ? ['farm-a'] : ['farm-a', 'farm-b']);
      for (const sample of samples) (rows[sample.metric.farm!] ??= {})[target.refId] = Number(sample.value[1]);
    }
    const a = rows['farm-a']!;
    expect({
      users: a.A,
      seats: a.B,
      usage: a.C,
      overuse: a.D,
      hostsUp: a.G,
      expected: a.H,
      sourceFailures: a.I,
    }).toEqual({
      users: 7,
      seats: 5,
      usage: 140,
      overuse: 2,
      hostsUp: 2,
      expected: 3,
      sourceFailures: 0,
    });
    // Grace left and days to expiry count from Prometheus's time(). Prometheus is Go and keeps the machine's
    // clock when the tests run on a shifted one (RASMON_TEST_CLOCK), so the collector's times are ahead of it
    // by the shift.
    const ahead = ownClockOffsetMs() / 1000;
    expect(a.E! - ahead).toBeGreaterThan(6 * 86_400);
    expect(a.E! - ahead).toBeLessThanOrEqual(7 * 86_400);
    expect(rows['farm-b']!.F! - ahead / 86_400).toBeGreaterThan(9.9);
    expect(rows['farm-b']!.F! - ahead / 86_400).toBeLessThanOrEqual(10);
    expect({ expected: rows['farm-b']!.H, sourceFailures: rows['farm-b']!.I }).toEqual({
      expected: 0,
      sourceFailures: 0,
    });
  });

  it('links a farm to the collector API that lists the users over the limit, and to the status page', async () => {
    type Link = { url: string };
    type Panel = {
      type: string;
      title?: string;
      fieldConfig?: {
        overrides?: Array<{ matcher: { options: string }; properties: Array<{ id: string; value: unknown }> }>;
      };
    };
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
    const table = dashboard.panels.find((panel) => panel.type === 'table' && panel.title === 'Farms')!;
    const farmLinks = table
      .fieldConfig!.overrides!.find((o) => o.matcher.options === 'Farm')!
      .properties.find((p) => p.id === 'links')!.value as Link[];
    await pushOverSeats();
    // As Grafana fills them in: the collector variable, and the clicked cell's farm.
    const urls = farmLinks.map((link) =>
      link.url.replaceAll('${collector}', collectors[1]!.url).replaceAll('${__value.raw}', 'farm-a'),
    );
    expect(urls).toEqual([`${collectors[1]!.url}/api/v1/farms/farm-a`, `${collectors[1]!.url}/`]);
    const detail = (await (await fetch(urls[0]!)).json()) as { overLimit: string[] };
    expect(detail.overLimit).toHaveLength(2);
    const page = await fetch(urls[1]!);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
  });

  it('annotates with firing alerts: the annotation query runs and finds the overuse alert', async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      annotations: { list: Array<{ expr?: string }> };
    };
    const queries = dashboard.annotations.list.filter((a) => a.expr !== undefined).map((a) => substitute(a.expr!));
    expect(queries.length).toBeGreaterThan(0);
    await pushOverSeats();
    await scraped();
    for (const query of queries) {
      await vi.waitFor(
        async () => {
          const names = (await prometheus.vector(query))
            .filter((s) => s.metric.farm === 'farm-a')
            .map((s) => s.metric.alertname);
          expect(names).toContain('RasLicenseOveruse');
        },
        { timeout: (MAX_OVERUSE_FOR_SECONDS + 30) * 1000 },
      );
    }
  });

  it('runs every rule expression: it parses, and returns data or every selector in it does', async () => {
    expect(rules.length, `no rules found in ${RULES_DIR}`).toBeGreaterThan(0);
    await pushOverSeats();
    await scraped();
    await sleep(2000); // a rule evaluation or two after the scrape, for the recording rules
    const failures: string[] = [];
    const quiet: string[] = [];
    for (const rule of rules) {
      const where = `${rule.file.split('/').pop()} ${rule.group}/${rule.name}`;
      const answer = await prometheus.query(rule.expr);
      if (answer.status !== 'success') {
        failures.push(`${where}: ${answer.error}`);
        continue;
      }
      if ((answer.data!.result as Sample[]).length > 0) continue;
      // A condition false now: it must at least read series that exist.
      quiet.push(rule.name);
      const selectors = selectorsIn(rule.expr);
      if (selectors.length === 0) failures.push(`${where}: no data and no selector to check`);
      for (const selector of selectors) {
        // The agents' own series come from the opt-in agent scrape job (deploy/prometheus/prometheus.yml),
        // which this scenario, scraping the collectors, does not run; promtool's rule tests cover their
        // alerts (deploy/prometheus/tests). Here their expressions must parse, as above.
        if (AGENT_SERIES.test(selector)) continue;
        const data = await prometheus.vector(selector);
        if (data.length === 0) failures.push(`${where}: no data, and its selector ${selector} has none either`);
      }
    }
    expect(failures).toEqual([]);
    // The scenario sets most conditions off; those left quiet are the ones a healthy farm keeps false.
    expect(quiet.length).toBeLessThan(rules.length);
  });
});
