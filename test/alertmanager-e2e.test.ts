/**
 * deploy/alertmanager/alertmanager.yml:
 * - passes `amtool check-config`, and every alert name its inhibit rules match exists in the rules;
 * - end to end, with a REAL collector (and its Redis), a REAL Prometheus evaluating the shipped rules and
 *   a REAL Alertmanager (`prometheus-alertmanager`, Debian's package) running a copy of the shipped
 *   configuration whose receivers point at a webhook inside this test, and whose group_wait and
 *   group_interval are 1 s (routes, grouping and inhibit rules as shipped):
 *   one overused farm gives one notification group for that farm, holding only the overuse alert (its
 *   grace-running and admissions alerts fire in Prometheus but are inhibited); stopping the collector
 *   sends no RESOLVED for it; ending the overuse does.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';
import { untilServing } from './support/process-start.js';
import { freePort } from './support/free-port.js';
import { useRedis } from './support/use-redis.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, end, session, upsert } from './support/agent-client.js';
import { PrometheusServer } from './support/prometheus-server.js';

const ROOT = new URL('..', import.meta.url).pathname;
const AM_CONFIG = join(ROOT, 'deploy/alertmanager/alertmanager.yml');
const RULES_DIR = join(ROOT, 'deploy/prometheus/rules');
const ALERTMANAGER = '/usr/bin/prometheus-alertmanager';

const ruleFiles = () =>
  readdirSync(RULES_DIR)
    .filter((name) => name.endsWith('.yml'))
    .map((name) => join(RULES_DIR, name));

interface AmConfig {
  route: {
    receiver: string;
    group_by?: string[];
    group_wait?: string;
    group_interval?: string;
    routes?: Array<Record<string, unknown>>;
  };
  receivers: Array<{ name: string; webhook_configs?: Array<{ url: string }> }>;
  inhibit_rules: Array<{ source_matchers: string[]; target_matchers: string[]; equal?: string[] }>;
}

/** One webhook delivery from Alertmanager (its JSON payload, the fields this test reads). */
interface Notification {
  receiver: string;
  status: 'firing' | 'resolved';
  groupKey: string;
  groupLabels: Record<string, string>;
  alerts: Array<{ status: 'firing' | 'resolved'; labels: Record<string, string> }>;
}

/** An HTTP server on loopback that keeps every notification POSTed to it. */
class WebhookReceiver {
  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly received: Notification[],
  ) {}

  static async start(): Promise<WebhookReceiver> {
    const received: Notification[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push(JSON.parse(Buffer.concat(chunks).toString()) as Notification);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new WebhookReceiver(server, (server.address() as { port: number }).port, received);
  }

  forFarm(farm: string): Notification[] {
    return this.received.filter((n) => n.groupLabels.farm === farm);
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A real Alertmanager on loopback (no cluster listener) with a config written for it. */
class AlertmanagerServer {
  private readonly output: string[] = [];
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly dir: string,
  ) {
    child.stdout!.on('data', (chunk: Buffer) => this.output.push(chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => this.output.push(chunk.toString()));
  }

  static async start(config: AmConfig): Promise<AlertmanagerServer> {
    const dir = mkdtempSync(join(tmpdir(), 'rasmon-alertmanager-'));
    writeFileSync(join(dir, 'alertmanager.yml'), YAML.stringify(config));
    const port = await freePort();
    const child = spawn(
      ALERTMANAGER,
      [
        `--config.file=${join(dir, 'alertmanager.yml')}`,
        `--storage.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const server = new AlertmanagerServer(child, port, dir);
    await untilServing(child, `http://127.0.0.1:${port}/-/ready`, {
      name: 'alertmanager',
      output: () => server.output.join(''),
      kill: () => server.stop(),
      timeoutMs: 20_000,
    });
    return server;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const shipped = () => YAML.parse(readFileSync(AM_CONFIG, 'utf8')) as AmConfig;

describe('the shipped Alertmanager configuration', () => {
  it('passes amtool check-config', () => {
    const run = spawnSync('amtool', ['check-config', AM_CONFIG], { encoding: 'utf8', timeout: 30_000 });
    expect(run.error, 'amtool is not on the PATH: install prometheus-alertmanager (Debian)').toBeUndefined();
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
  });

  it('groups by farm, routes by severity, and inhibits only alerts that exist', () => {
    const config = shipped();
    expect(config.route.group_by).toEqual(['farm']);
    const severities = (config.route.routes ?? []).map((route) => (route.matchers as string[]).join(','));
    expect(severities).toEqual(['severity="critical"', 'severity="warning"', 'severity="info"']);
    const alerts = new Set(
      ruleFiles().flatMap((file) =>
        (
          (YAML.parse(readFileSync(file, 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string }> }> }).groups ??
          []
        ).flatMap((group) => group.rules.flatMap((rule) => (rule.alert ? [rule.alert] : []))),
      ),
    );
    const named = config.inhibit_rules.flatMap((rule) =>
      [...rule.source_matchers, ...rule.target_matchers].flatMap((matcher) => {
        const m = /^alertname=~?"([^"]+)"$/.exec(matcher);
        return m ? m[1]!.split('|') : [];
      }),
    );
    expect(named.length).toBeGreaterThan(10);
    expect(named.filter((name) => !alerts.has(name))).toEqual([]);
  });
});

describe('Alertmanager with Prometheus and a collector: one page per farm, no false RESOLVED', () => {
  const redis = useRedis();
  let collector: InProcessCollector | undefined;
  let raw: Record<string, unknown>;
  let receiver: WebhookReceiver;
  let alertmanager: AlertmanagerServer;
  let prometheus: PrometheusServer;
  let agent: TestAgent | undefined;
  let seq = 0;
  const users = ['CORP\\alice', 'CORP\\bob', 'CORP\\carol'];
  const sessions = users.map((user, i) => session(`s${i + 1}`, user));

  beforeAll(async () => {
    const port = await freePort();
    raw = rawConfig(
      redis.url,
      [
        { id: 'farm-a', seats: 2 },
        { id: 'farm-b', seats: 100 },
      ],
      { listen: `127.0.0.1:${port}` },
    );
    collector = await InProcessCollector.start(raw);

    receiver = await WebhookReceiver.start();
    const config = shipped();
    // The shipped routes and inhibit rules; receivers into this test, and short waits.
    config.route.group_wait = '1s';
    config.route.group_interval = '1s';
    for (const r of config.receivers) {
      for (const hook of r.webhook_configs ?? []) hook.url = `http://127.0.0.1:${receiver.port}/${r.name}`;
    }
    alertmanager = await AlertmanagerServer.start(config);
    prometheus = await PrometheusServer.start([`127.0.0.1:${port}`], ruleFiles(), {
      alertmanager: `127.0.0.1:${alertmanager.port}`,
    });

    agent = await TestAgent.connect(collector.url, 'token-farm-a');
    await agent.hello('farm-a', 'rdsh-a1', 'stream-a1');
    await agent.snapshot((seq += 1), sessions.slice(0, 2));
    // Scraped within the seats first, so the admission that follows is an increase Prometheus sees.
    await vi.waitFor(
      async () =>
        expect(await prometheus.vector('max(ras_license_users{farm="farm-a"})')).toMatchObject([
          { value: [expect.any(Number), '2'] },
        ]),
      { timeout: 20_000 },
    );
  });

  afterAll(async () => {
    await agent?.close();
    await prometheus?.stop();
    await alertmanager?.stop();
    await receiver?.stop();
    await collector?.stop();
  });

  const firingIn = async (names: string[]) => {
    const alerts = (await prometheus.alerts())
      .filter((a) => a.labels.farm === 'farm-a' && a.state === 'firing')
      .map((a) => a.labels.alertname);
    for (const name of names) expect(alerts).toContain(name);
  };

  it('sends one notification group for the overused farm, holding only the overuse alert', async () => {
    await agent!.events([upsert((seq += 1), sessions[2]!)]);
    // Prometheus fires the overuse and what it inhibits.
    await vi.waitFor(
      () => firingIn(['RasLicenseOveruse', 'RasLicenseOveruseGraceRunning', 'RasLicenseOveruseAdmissions']),
      { timeout: 20_000 },
    );
    await expect.poll(() => receiver.forFarm('farm-a').length, { timeout: 20_000 }).toBeGreaterThan(0);
    // A few group intervals more: nothing else may arrive for the farm.
    await sleep(4000);
    const sent = receiver.forFarm('farm-a');
    expect(new Set(sent.map((n) => n.groupKey)).size, 'notification groups for farm-a').toBe(1);
    expect([...new Set(sent.flatMap((n) => n.alerts.map((a) => `${a.labels.alertname} ${a.status}`)))]).toEqual([
      'RasLicenseOveruse firing',
    ]);
    expect(sent[0]!.receiver).toBe('team');
    expect(receiver.forFarm('farm-b')).toEqual([]);
  });

  it('sends no RESOLVED for the farm while the collector is stopped', async () => {
    const before = receiver.received.length;
    await agent!.close();
    agent = undefined;
    await collector!.stop();
    collector = undefined;
    await expect.poll(() => prometheus.vector('up{job="rasmon-collector"} == 0'), { timeout: 10_000 }).toHaveLength(1);
    await sleep(8000);
    const resolved = receiver.received.slice(before).filter((n) => n.alerts.some((a) => a.status === 'resolved'));
    expect(resolved).toEqual([]);
    // Prometheus still holds the overuse: no farm series are scraped, the last known state stands.
    expect(await prometheus.vector('max by (farm) (ras_license_overuse_users)')).toEqual([]);
    await firingIn(['RasLicenseOveruse']);
  });

  it('sends RESOLVED once the overuse really ends', async () => {
    collector = await InProcessCollector.start(raw);
    agent = await TestAgent.connect(collector.url, 'token-farm-a');
    const welcome = await agent.hello('farm-a', 'rdsh-a1', 'stream-a1');
    expect(welcome.ack).toBe(seq);
    await agent.events([end((seq += 1), sessions[2]!.id)]);
    await vi.waitFor(
      () => {
        const resolved = receiver
          .forFarm('farm-a')
          .flatMap((n) => n.alerts)
          .filter((a) => a.labels.alertname === 'RasLicenseOveruse' && a.status === 'resolved');
        expect(resolved.length).toBeGreaterThan(0);
      },
      { timeout: 30_000 },
    );
    expect(new Set(receiver.forFarm('farm-a').map((n) => n.groupKey)).size).toBe(1);
  });
});
