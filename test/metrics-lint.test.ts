/**
 * The /metrics contract (docs/design.md §4): a real scrape after real activity passes
 * `promtool check metrics` as a whole (Node's process metrics included), so does the agent's own
 * registry; the scrape carries every metric of the table with its type, every farm all 16
 * `ras_connections` label sets (0 where none), and never turns a user into a label.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { useRedis } from './support/use-redis.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, UpgradeRefused, end, session, upsert } from './support/agent-client.js';
import { parseMetrics, Scrape } from './support/prometheus-text.js';
import { AgentMetrics } from '@rasmon/agent';

const PROMTOOL = 'promtool';

/** Every metric of docs/design.md §4's table, with the type its name and meaning give it. */
const TABLE: Array<[string, 'gauge' | 'counter' | 'histogram']> = [
  ['ras_license_info', 'gauge'],
  ['ras_license_seats', 'gauge'],
  ['ras_license_users', 'gauge'],
  ['ras_license_users_unverified', 'gauge'],
  ['ras_license_overuse_users', 'gauge'],
  ['ras_license_overuse_admissions_total', 'counter'],
  ['ras_license_peak_users', 'gauge'],
  ['ras_license_peak_users_today', 'gauge'],
  ['ras_license_state', 'gauge'],
  ['ras_license_expiry_timestamp_seconds', 'gauge'],
  ['ras_license_grace_end_timestamp_seconds', 'gauge'],
  ['ras_license_overuse_grace_start_timestamp_seconds', 'gauge'],
  ['ras_license_overuse_grace_end_timestamp_seconds', 'gauge'],
  ['ras_license_overuse_grace_exhausted', 'gauge'],
  ['ras_license_deactivation_risk', 'gauge'],
  ['ras_connections', 'gauge'],
  ['ras_connections_exempt', 'gauge'],
  ['ras_host_connections', 'gauge'],
  ['ras_agent_up', 'gauge'],
  ['ras_agent_last_seen_timestamp_seconds', 'gauge'],
  ['ras_agent_source_up', 'gauge'],
  ['ras_agent_source_last_success_timestamp_seconds', 'gauge'],
  ['ras_agent_info', 'gauge'],
  ['ras_farm_last_update_timestamp_seconds', 'gauge'],
  ['ras_snapshot_corrections_total', 'counter'],
  ['rasmon_collector_build_info', 'gauge'],
  ['rasmon_collector_config_info', 'gauge'],
  ['rasmon_collector_agents_connected', 'gauge'],
  ['rasmon_collector_frames_total', 'counter'],
  ['rasmon_collector_events_total', 'counter'],
  ['rasmon_collector_apply_duration_seconds', 'histogram'],
  ['rasmon_collector_upgrades_rejected_total', 'counter'],
  ['rasmon_collector_agents_dropped_total', 'counter'],
  ['rasmon_collector_redis_up', 'gauge'],
  ['rasmon_collector_redis_refusing_writes', 'gauge'],
];

const GRACE = ['ras_license_overuse_grace_start_timestamp_seconds', 'ras_license_overuse_grace_end_timestamp_seconds'];

const USERS = ['corp\\alice', 'corp\\bob', 'corp\\carol', 'corp\\dave', 'corp\\adm1', 'corp\\adm2', 'corp\\adm3'];

interface Lint {
  status: number | null;
  /** promtool's output lines (stdout and stderr), empty lines dropped. */
  lines: string[];
}

/** Pipes an exposition into `promtool check metrics`. */
function promtool(text: string): Promise<Lint> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, lines: output.split('\n').filter((line) => line.trim() !== '') });
    });
    child.stdin.end(text);
  });
}

/**
 * promtool exits 0 when clean, 3 when it only has lint findings (one `name problem` line each),
 * and 1 when it cannot parse the input. Returns the findings, and fails on anything that is not a
 * lint finding.
 */
function findings(lint: Lint): string[] {
  expect([0, 3], `promtool could not check the scrape: ${lint.lines.join('\n')}`).toContain(lint.status);
  const parsed = lint.lines.map((line) => /^([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line));
  expect(
    parsed.filter((match) => match === null),
    `unexpected promtool output: ${lint.lines.join('\n')}`,
  ).toEqual([]);
  if (lint.status === 3) expect(lint.lines.length).toBeGreaterThan(0);
  else expect(lint.lines).toEqual([]);
  return lint.lines;
}

const redis = useRedis();
let collector: InProcessCollector;
const agents: TestAgent[] = [];
let beforeOveruse: string;
let text: string;

beforeAll(async () => {
  collector = await InProcessCollector.start(
    rawConfig(redis.url, [
      { id: 'farm-a', seats: 2 },
      { id: 'farm-b', seats: 50, license: 'sublicense', expires: '2020-01-01T00:00:00Z' },
    ]),
    { tickMs: 100 },
  );
  const connect = async (host: string, farm = 'farm-a') => {
    const agent = await TestAgent.connect(collector.url, `token-${farm}`);
    agents.push(agent);
    await agent.hello(farm, host, `stream-${host}`, 'rasmon-agent/0.1.0 (test)');
    return agent;
  };
  const one = await connect('rdsh-1');
  // Statuses are not answered: the snapshot's ack after them says they were applied.
  one.send({ type: 'status', source: 'wts', ok: true, lastListAt: Date.now() });
  await one.snapshot(1, [
    session('1', 'corp\\alice'),
    session('2', 'corp\\adm1', { admin: true, kind: 'desktop', via: 'rdp' }),
    session('3', 'corp\\adm2', { admin: true, kind: 'desktop', via: 'ras' }),
    session('4', 'corp\\adm3', { admin: true, kind: 'desktop', via: 'ras' }),
  ]);
  const two = await connect('rdsh-2');
  await two.snapshot(1, [session('1', 'corp\\alice', { kind: 'app', state: 'disconnected' })]);
  const three = await connect('rdsh-3');
  three.send({ type: 'status', source: 'wts', ok: false, error: 'WTSEnumerateSessions failed: access denied' });
  await three.snapshot(1, []);
  const other = await connect('rdsh-b1', 'farm-b');
  await other.snapshot(1, [session('1', 'corp\\bob', { via: 'rdp' })]);
  beforeOveruse = await (await fetch(`${collector.url}/metrics`)).text();

  // Over the 2 seats of farm-a: the overuse grace starts.
  await three.events([
    upsert(2, session('1', 'corp\\bob', { kind: 'app', admin: true })),
    upsert(3, session('2', 'corp\\carol')),
    upsert(4, session('3', 'corp\\dave')),
    end(5, '3'),
    { seq: 6, at: Date.now(), op: 'bogus' },
  ]);
  await expect(TestAgent.connect(collector.url, 'not-a-token')).rejects.toBeInstanceOf(UpgradeRefused);
  // A host whose agent went away: stale, still counted.
  two.socket.terminate();
  await vi.waitFor(
    async () => {
      expect((await Scrape.from(collector.url)).value('ras_agent_up', { farm: 'farm-a', host: 'rdsh-2' })).toBe(0);
    },
    { timeout: 10_000 },
  );
  text = await (await fetch(`${collector.url}/metrics`)).text();
});

afterAll(async () => {
  for (const agent of agents) agent.socket.terminate();
  await collector?.stop();
});

describe('/metrics', () => {
  it('the lint check catches a badly named or typed ras_ metric', async () => {
    const bad = [
      '# HELP ras_bad_total a gauge that says it counts',
      '# TYPE ras_bad_total gauge',
      'ras_bad_total 1',
      '# HELP ras_latency_ms a unit that is not a base unit',
      '# TYPE ras_latency_ms gauge',
      'ras_latency_ms 1',
      '',
    ].join('\n');
    const found = findings(await promtool(bad));
    expect(found.some((line) => line.startsWith('ras_bad_total'))).toBe(true);
    expect(found.some((line) => line.startsWith('ras_latency_ms'))).toBe(true);
  });

  it('a real scrape passes promtool check metrics as a whole, process metrics included', async () => {
    const lint = await promtool(text);
    expect(findings(lint)).toEqual([]);
    expect(lint.status).toBe(0);
    expect(findings(await promtool(beforeOveruse))).toEqual([]);
    // Node's process metrics are there (only the ones promtool rejects are dropped).
    const names = new Set(parseMetrics(text).map((sample) => sample.name));
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_active_handles',
    ]) {
      expect(names, name).toContain(name);
    }
  });

  it("the agent's own metrics pass promtool check metrics as a whole", async () => {
    const metrics = new AgentMetrics({ version: '0.1.0', source: 'wts' });
    metrics.pollErrors.inc();
    metrics.pollDuration.observe(0.02);
    metrics.adminUnknown.set(1);
    const text = await metrics.registry.metrics();
    const lint = await promtool(text);
    expect(findings(lint)).toEqual([]);
    expect(lint.status).toBe(0);
    expect(text).toContain(
      `rasmon_agent_build_info{version="0.1.0",node_version="${process.versions.node}",source="wts"} 1`,
    );
    expect(text).toContain('rasmon_agent_sessions_admin_unknown 1');
  });

  it('exports all 16 ras_connections label sets of every farm, 0 where there are none', () => {
    const scrape = new Scrape(parseMetrics(text));
    for (const farm of ['farm-a', 'farm-b']) {
      const samples = scrape.all('ras_connections', { farm });
      const keys = samples.map((s) => `${s.labels.kind}|${s.labels.via}|${s.labels.admin}|${s.labels.session_state}`);
      expect(new Set(keys).size, farm).toBe(16);
      expect(keys).toHaveLength(16);
    }
    // farm-b holds one active non-admin RDP desktop: that set is 1, the other 15 are 0.
    const b = scrape.all('ras_connections', { farm: 'farm-b' });
    expect(
      b
        .filter((s) => s.value !== 0)
        .map((s) => [s.labels.kind, s.labels.via, s.labels.admin, s.labels.session_state, s.value]),
    ).toEqual([['desktop', 'rdp', 'false', 'active', 1]]);
    expect(new Scrape(parseMetrics(beforeOveruse)).all('ras_connections', { farm: 'farm-a' })).toHaveLength(16);
  });

  it('every metric of the design table is exported with its type and has samples', () => {
    const types = new Map<string, string>();
    for (const line of text.split('\n')) {
      const match = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (match) types.set(match[1]!, match[2]!);
    }
    const sampled = new Set(parseMetrics(text).map((sample) => sample.name));
    const missing = TABLE.filter(([name]) => !types.has(name)).map(([name]) => name);
    expect(missing).toEqual([]);
    const mistyped = TABLE.filter(([name, type]) => types.get(name) !== type).map(
      ([name, type]) => `${name}: ${types.get(name)}, not ${type}`,
    );
    expect(mistyped).toEqual([]);
    const unsampled = TABLE.filter(([name, type]) => !sampled.has(type === 'histogram' ? `${name}_count` : name)).map(
      ([name]) => name,
    );
    expect(unsampled).toEqual([]);
  });

  it('the overuse grace series exist only for a farm whose grace has started', () => {
    const after = new Scrape(parseMetrics(text));
    const before = new Scrape(parseMetrics(beforeOveruse));
    for (const name of GRACE) {
      expect(before.all(name), `${name} before any overuse`).toEqual([]);
      expect(after.all(name).map((sample) => sample.labels.farm)).toEqual(['farm-a']);
    }
    expect(after.value('ras_license_overuse_users', { farm: 'farm-a' })).toBeGreaterThan(0);
    const start = after.value(GRACE[0]!, { farm: 'farm-a' })!;
    expect(Math.abs(start - Date.now() / 1000)).toBeLessThan(60);
    expect(after.value(GRACE[1]!, { farm: 'farm-a' })).toBeCloseTo(start + 7 * 86_400, 3);
    expect(after.value('ras_license_overuse_grace_exhausted', { farm: 'farm-a' })).toBe(0);
    expect(after.value('ras_license_deactivation_risk', { farm: 'farm-a' })).toBe(0);
  });

  it('label values are the documented ones and no user becomes a label', () => {
    const scrape = new Scrape(parseMetrics(text));
    const rasSamples = scrape.samples.filter((sample) => sample.name.startsWith('ras_'));
    const userLabels = rasSamples.filter((sample) =>
      Object.values(sample.labels).some((value) =>
        USERS.some((user) => value.toLowerCase().includes(user.split('\\')[1]!)),
      ),
    );
    expect(userLabels).toEqual([]);
    for (const sample of scrape.all('ras_connections')) {
      expect(Object.keys(sample.labels).sort()).toEqual(['admin', 'farm', 'kind', 'session_state', 'via']);
      expect(['true', 'false']).toContain(sample.labels.admin);
      expect(['desktop', 'app']).toContain(sample.labels.kind);
      expect(['ras', 'rdp']).toContain(sample.labels.via);
      expect(['active', 'disconnected']).toContain(sample.labels.session_state);
    }
    for (const farm of ['farm-a', 'farm-b']) {
      const states = scrape.all('ras_license_state', { farm });
      expect(states.map((sample) => sample.labels.state).sort()).toEqual(['active', 'expired', 'grace']);
      expect(states.filter((sample) => sample.value === 1)).toHaveLength(1);
    }
    expect(scrape.value('ras_license_state', { farm: 'farm-b', state: 'expired' })).toBe(1);
    expect(scrape.value('ras_license_info', { farm: 'farm-b', license: 'sublicense' })).toBe(1);
    expect(scrape.value('ras_agent_info', { farm: 'farm-a', host: 'rdsh-1', agent: 'rasmon-agent/0.1.0 (test)' })).toBe(
      1,
    );
  });
});
