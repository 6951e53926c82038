/**
 * The agent's source health reaches the collector (feature `status`): the real agent bin with a
 * `command` source that fails on demand, against a real collector and Redis, shows
 * `ras_agent_source_up` 0 and the error in the API, and 1 again once the source recovers; forgetting
 * the host removes it. Against a collector whose welcome does not list the feature (a WebSocket
 * server inside the test), the agent sends no status at all, and one that lists it gets one.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WebSocketServer } from 'ws';
import { DEFAULT_LIMITS, SUBPROTOCOL } from '@rasmon/protocol';
import { freePort } from './support/free-port.js';
import { useRedis } from './support/use-redis.js';
import { COLLECTOR_BIN, InProcessCollector, rawConfig } from './support/collector-harness.js';
import { AgentProcess } from './support/agent-process.js';
import { Scrape } from './support/prometheus-text.js';

const FARM = 'farm-a';
const HOST = 'rdsh-01';
const TOKEN = 'token-farm-a';
const run = promisify(execFile);

interface HostEntry {
  host: string;
  source: { name: string; ok: boolean; lastListAt: string | null } | null;
  sourceError: string | null;
}

/** A `command` source that lists no sessions, or fails (exit 3, a message with control characters) while `fail` exists. */
function failingSource(): { dir: string; command: string; fail(on: boolean): void } {
  const dir = mkdtempSync(join(tmpdir(), 'rasmon-source-status-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'list.sh');
  const flag = join(dir, 'fail');
  writeFileSync(
    script,
    `if [ -f '${flag}' ]; then printf 'WTSEnumerateSessions: access denied\\n\\033[31mcode 5\\033[0m' >&2; exit 3; fi\necho '[]'\n`,
  );
  return {
    dir,
    command: `sh '${script}'`,
    fail: (on) => (on ? writeFileSync(flag, '') : rmSync(flag, { force: true })),
  };
}

async function startAgent(url: string, command: string, dir: string): Promise<AgentProcess> {
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  const agent = await AgentProcess.start({
    collector: url,
    tokenFile,
    farm: FARM,
    host: HOST,
    source: 'command',
    command,
    pollIntervalSeconds: 0.1,
    snapshotIntervalSeconds: 3600,
    spool: { dir: join(dir, 'spool') },
    reconnect: { initialSeconds: 0.1, maxSeconds: 0.5 },
    metrics: { listen: `127.0.0.1:${await freePort()}` },
  });
  onTestFinished(() => agent.kill());
  return agent;
}

describe('source status against the collector', () => {
  const redis = useRedis();
  let collector: InProcessCollector;
  let raw: Record<string, unknown>;

  beforeAll(async () => {
    raw = rawConfig(redis.url, [{ id: FARM, seats: 10, token: TOKEN }]);
    collector = await InProcessCollector.start(raw, { tickMs: 100 });
  });
  afterAll(async () => {
    await collector?.stop();
  });

  const hostEntry = async () => {
    const detail = (await (await fetch(`${collector.url}/api/v1/farms/${FARM}`)).json()) as { hosts: HostEntry[] };
    return detail.hosts.find((host) => host.host === HOST);
  };

  it('a failing source shows source_up 0 and its error; a recovered one 1 and a fresh last success', async () => {
    const source = failingSource();
    source.fail(true);
    const port = collector.collector.address.port;
    await startAgent(`ws://127.0.0.1:${port}`, source.command, source.dir);

    const failing = await vi.waitFor(
      async () => {
        const scrape = await Scrape.from(collector.url);
        expect(scrape.value('ras_agent_up', { farm: FARM, host: HOST })).toBe(1);
        expect(scrape.value('ras_agent_source_up', { farm: FARM, host: HOST })).toBe(0);
        return scrape;
      },
      { timeout: 10_000 },
    );
    // It never listed: no last success yet.
    expect(failing.all('ras_agent_source_last_success_timestamp_seconds', { farm: FARM, host: HOST })).toEqual([]);
    const entry = await hostEntry();
    expect(entry?.source).toEqual({ name: 'command', ok: false, lastListAt: null });
    // The command's stderr, control characters cut.
    expect(entry?.sourceError).toBe('command exited 3: WTSEnumerateSessions: access denied [31mcode 5 [0m');

    const before = Date.now();
    source.fail(false);
    const recovered = await vi.waitFor(
      async () => {
        const scrape = await Scrape.from(collector.url);
        expect(scrape.value('ras_agent_source_up', { farm: FARM, host: HOST })).toBe(1);
        return scrape;
      },
      { timeout: 10_000 },
    );
    const lastSuccess = recovered.value('ras_agent_source_last_success_timestamp_seconds', { farm: FARM, host: HOST })!;
    expect(lastSuccess * 1000).toBeGreaterThanOrEqual(before - 1000);
    expect(lastSuccess * 1000).toBeLessThanOrEqual(Date.now());
    const healthy = await hostEntry();
    expect(healthy?.source?.ok).toBe(true);
    expect(healthy?.sourceError).toBeNull();
    expect(Date.parse(healthy!.source!.lastListAt!)).toBe(lastSuccess * 1000);

    // Failing again keeps the last success.
    source.fail(true);
    const again = await vi.waitFor(
      async () => {
        const scrape = await Scrape.from(collector.url);
        expect(scrape.value('ras_agent_source_up', { farm: FARM, host: HOST })).toBe(0);
        return scrape;
      },
      { timeout: 10_000 },
    );
    expect(
      again.value('ras_agent_source_last_success_timestamp_seconds', { farm: FARM, host: HOST }),
    ).toBeGreaterThanOrEqual(lastSuccess);
  });

  it('forgetting the host removes its source status', async () => {
    await expect.poll(async () => (await hostEntry())?.source, { timeout: 10_000 }).not.toBeNull();
    // The previous test's agent was killed when it finished; what it reported stays in Redis.
    const configPath = join(mkdtempSync(join(tmpdir(), 'rasmon-source-status-')), 'collector.json');
    writeFileSync(configPath, JSON.stringify(raw));
    const forgot = await run(
      process.execPath,
      [COLLECTOR_BIN, 'forget-host', '--config', configPath, '--farm', FARM, '--host', HOST],
      {
        env: { ...process.env, RASMON_LOG_LEVEL: 'warn' },
      },
    );
    expect(forgot.stdout).toContain(HOST);
    const client = redis.client();
    try {
      const prefix = (raw.redis as { prefix: string }).prefix;
      expect(await client.hexists(`${prefix}:{${FARM}}:sources`, HOST)).toBe(0);
    } finally {
      client.disconnect();
    }
    await vi.waitFor(
      async () => {
        const scrape = await Scrape.from(collector.url);
        expect(scrape.all('ras_agent_source_up', { farm: FARM })).toEqual([]);
      },
      { timeout: 10_000 },
    );
    expect(await hostEntry()).toBeUndefined();
  });
});

describe('source status against a collector without the feature', () => {
  /** A collector stand-in: welcomes every hello (with the given features) and records what it gets. */
  async function fakeCollector(features: string[] | undefined) {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => SUBPROTOCOL });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const frames: Array<{ type: string; [key: string]: unknown }> = [];
    server.on('connection', (socket) => {
      socket.on('message', (data) => {
        const frame = JSON.parse(String(data)) as { type: string; seq?: number };
        frames.push(frame);
        if (frame.type === 'hello') {
          const welcome = { type: 'welcome', ack: 0, heartbeatSeconds: 15, limits: DEFAULT_LIMITS };
          socket.send(JSON.stringify(features === undefined ? welcome : { ...welcome, features }));
        } else if (frame.type === 'snapshot') {
          socket.send(JSON.stringify({ type: 'ack', seq: frame.seq }));
        }
      });
    });
    onTestFinished(
      () =>
        new Promise<void>((resolve) => {
          for (const client of server.clients) client.terminate();
          server.close(() => resolve());
        }),
    );
    return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, frames };
  }

  const pollErrors = async (agent: AgentProcess) =>
    (await Scrape.from(agent.metricsUrl)).value('rasmon_agent_poll_errors_total') ?? 0;

  it('an older collector (no features) gets no status, however often the source fails', async () => {
    const source = failingSource();
    source.fail(true);
    const fake = await fakeCollector(undefined);
    const agent = await startAgent(fake.url, source.command, source.dir);
    await expect.poll(() => fake.frames.some((frame) => frame.type === 'snapshot'), { timeout: 10_000 }).toBe(true);
    // Fails every poll after the welcome; then heals, which would be a change too.
    const failures = await pollErrors(agent);
    await expect.poll(() => pollErrors(agent), { timeout: 10_000 }).toBeGreaterThanOrEqual(failures + 3);
    source.fail(false);
    await vi.waitFor(
      async () => {
        const scrape = await Scrape.from(agent.metricsUrl);
        const errors = scrape.value('rasmon_agent_poll_errors_total');
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect((await Scrape.from(agent.metricsUrl)).value('rasmon_agent_poll_errors_total')).toBe(errors);
      },
      { timeout: 10_000 },
    );
    expect(fake.frames.map((frame) => frame.type)).toContain('hello');
    expect(fake.frames.filter((frame) => frame.type === 'status')).toEqual([]);
  });

  it('a collector whose welcome lists it gets the status after the welcome', async () => {
    const source = failingSource();
    source.fail(true);
    const fake = await fakeCollector(['status']);
    await startAgent(fake.url, source.command, source.dir);
    const status = await vi.waitFor(
      () => {
        const found = fake.frames.find((frame) => frame.type === 'status');
        expect(found).toBeDefined();
        return found!;
      },
      { timeout: 10_000 },
    );
    expect(status).toMatchObject({ type: 'status', source: 'command', ok: false });
    expect(status).not.toHaveProperty('seq');
    source.fail(false);
    await expect
      .poll(() => fake.frames.filter((frame) => frame.type === 'status').at(-1), { timeout: 10_000 })
      .toMatchObject({ ok: true });
  });
});
