/**
 * dist/rasmon-agent.exe itself, under wine64 (one prefix for this file): the exe that goes onto
 * RD Session Hosts, built from these sources if it is missing or stale.
 *
 * What wine cannot show — real RDS sessions, user tokens, session events from real logons — is
 * pinned by agent/test/wts-decode.test.ts (the SDK layouts) and agent/test/wts-source.test.ts
 * (tokens, UAC, adminGroups, once per logon).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import type { AgentEvent } from '@rasmon/protocol';
import { SimulatedHost } from './support/agent-simulated-host.js';
import { readSpool } from './support/agent-process.js';
import { CollectorProcess, rawConfig } from './support/collector-harness.js';
import { Scrape } from './support/prometheus-text.js';
import { freePort } from './support/free-port.js';
import { useRedis } from './support/use-redis.js';
import { DISPOSE_TIMEOUT_MS, ensureAgentExe, type WineProcess, WINE_MISSING, WinePrefix } from './support/wine.js';

const AGENT_BIN = new URL('../agent/bin/rasmon-agent.js', import.meta.url).pathname;
const FIXTURES = new URL('../agent/test/fixtures/', import.meta.url).pathname;
const VERSION = (
  JSON.parse(readFileSync(new URL('../agent/package.json', import.meta.url), 'utf8')) as { version: string }
).version;
const FARM = 'farm-w';
const HOST = 'rdsh-w1';
const TOKEN = 'token-farm-w';

/** A Linux path as the exe sees it: wine maps `/` to drive Z:. */
const windowsPath = (path: string) => `Z:${path.replaceAll('/', '\\')}`;

describe.skipIf(WINE_MISSING !== undefined)('rasmon-agent.exe under wine', () => {
  let wine: WinePrefix;
  const redis = useRedis();

  beforeAll(async () => {
    wine = await ensureAgentExe().then(() => WinePrefix.create());
  }, 600_000);
  afterAll(async () => {
    await wine?.dispose();
  }, DISPOSE_TIMEOUT_MS);

  it('prints its version', async () => {
    const run = await wine.exe(['--version']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${VERSION}\n`);
  }, 120_000);

  it('reads saved quser and qwinsta outputs exactly as the Linux agent does', async () => {
    const fixtures = readdirSync(FIXTURES).filter((name) => /^(quser|qwinsta)-.*\.txt$/.test(name));
    expect(fixtures.length).toBeGreaterThan(4);
    const started = Date.now();
    const args = ['sessions', '--host', HOST, '--source', 'quser', '--input'];
    // All at once: each exe start under wine takes a while on a busy machine.
    const exes = await Promise.all(
      fixtures.map((name) => wine.exe([...args, windowsPath(join(FIXTURES, name))], { env: { TZ: 'UTC' } })),
    );
    for (const [index, name] of fixtures.entries()) {
      const linux = spawnSync(process.execPath, [AGENT_BIN, ...args, join(FIXTURES, name)], {
        encoding: 'utf8',
        env: { ...process.env, TZ: 'UTC' },
      });
      expect(linux.status, name).toBe(0);
      const exe = exes[index]!;
      expect(exe.code, `${name}: ${exe.stderr}`).toBe(0);
      // qwinsta tells no logon time: such sessions are dated when first seen, in each run.
      const undated = (json: string) =>
        (JSON.parse(json) as Array<{ id: string; since: number }>).map((s) =>
          s.since >= started && s.since <= Date.now() ? { ...s, id: s.id.replace(/-\d+$/, '-now'), since: 'now' } : s,
        );
      expect(undated(exe.stdout), name).toEqual(undated(linux.stdout));
    }
  }, 180_000);

  it('lists the sessions through the WTS API in-process (koffi from the exe), without error', async () => {
    const run = await wine.exe(['sessions', '--host', HOST, '--source', 'wts'], {
      env: { RASMON_LOG_LEVEL: 'debug' },
    });
    expect(run.code, `exit code; stderr: ${run.stderr || '(empty)'}`).toBe(0);
    // wine's wtsapi32 has no user sessions to list.
    expect(JSON.parse(run.stdout)).toEqual([]);
    const reads = run.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; level: string; processes?: number });
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.filter((line) => ['warn', 'error', 'fatal'].includes(line.level))).toEqual([]);
    // The process enumeration went through the FFI and came back decoded (this very exe among them).
    expect(reads.find((line) => line.msg === 'wts read')?.processes).toBeGreaterThan(0);
  }, 120_000);

  describe('against a real collector', () => {
    let dir: string;
    let host: SimulatedHost;
    let raw: Record<string, unknown>;
    let collector: CollectorProcess;
    let configPath: string;
    let metricsUrl: string;
    let spoolDir: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'rasmon-exe-e2e-'));
      host = new SimulatedHost(dir, { seed: 71, host: HOST });
      raw = rawConfig(redis.url, [{ id: FARM, seats: 1000, token: TOKEN }]);
      collector = await CollectorProcess.start(raw);
      writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
      spoolDir = join(dir, 'spool');
      const metricsPort = await freePort();
      metricsUrl = `http://127.0.0.1:${metricsPort}`;
      configPath = join(dir, 'agent.json');
      writeFileSync(
        configPath,
        JSON.stringify({
          collector: `ws://127.0.0.1:${collector.port}`,
          tokenFile: windowsPath(join(dir, 'token')),
          farm: FARM,
          host: HOST,
          source: 'command',
          // Run through cmd.exe, as on Windows.
          command: `type "${windowsPath(host.sessionsPath)}"`,
          pollIntervalSeconds: 0.2,
          snapshotIntervalSeconds: 3600,
          spool: { dir: windowsPath(spoolDir) },
          reconnect: { initialSeconds: 0.1, maxSeconds: 0.5, supersededSeconds: 1 },
          metrics: { listen: `127.0.0.1:${metricsPort}` },
        }),
      );
    }, 120_000);
    afterAll(async () => {
      await collector?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    async function startExe(): Promise<WineProcess> {
      const agent = await wine.startExe(['--config', windowsPath(configPath)]);
      onTestFinished(() => agent.kill());
      await vi.waitFor(
        async () => {
          if (agent.child.exitCode !== null)
            throw new Error(`exe exited ${agent.child.exitCode}: ${agent.stdout}${agent.stderr}`);
          await Scrape.from(metricsUrl);
        },
        { timeout: 60_000 },
      );
      return agent;
    }

    /** The collector's view of this host equals the simulated truth, in the API and in /metrics. */
    async function collectorHasTruth(target: CollectorProcess): Promise<void> {
      const truth = host.sessions();
      expect(truth.length).toBeGreaterThan(0);
      await vi.waitFor(
        async () => {
          const res = await fetch(`${target.url}/api/v1/farms/${FARM}`, { signal: AbortSignal.timeout(10_000) });
          const detail = (await res.json()) as { connections: Array<{ id: string; host: string; state: string }> };
          const ids = detail.connections.filter((c) => c.host === HOST).map((c) => `${c.id}:${c.state}`);
          expect(ids.sort()).toEqual(truth.map((s) => `${s.id}:${s.state}`).sort());
          const scrape = await Scrape.from(target.url);
          expect(scrape.value('ras_host_connections', { farm: FARM, host: HOST })).toBe(truth.length);
          expect(scrape.value('ras_agent_up', { farm: FARM, host: HOST })).toBe(1);
        },
        { timeout: 30_000 },
      );
    }

    async function agentIdle(): Promise<void> {
      await vi.waitFor(
        async () => {
          const scrape = await Scrape.from(metricsUrl);
          expect(scrape.value('rasmon_agent_connected')).toBe(1);
          expect(scrape.value('rasmon_agent_spool_events')).toBe(0);
        },
        { timeout: 30_000 },
      );
    }

    const count = async (target: CollectorProcess, name: string, labels: Record<string, string>) =>
      (await Scrape.from(target.url)).value(name, labels);

    it('delivers the command source sessions to /metrics, streams a change, and loses nothing when killed with a full spool', async () => {
      const agent = await startExe();
      await collectorHasTruth(collector);
      await agentIdle();

      // A change on the host streams to the collector.
      host.step(30_000);
      await collectorHasTruth(collector);
      await agentIdle();
      const ackBefore = readSpool(spoolDir).state.acked;

      // The collector goes away; the host keeps changing; the exe spools, then is killed.
      collector.signal('SIGKILL');
      await vi.waitFor(() => collector.exited, { timeout: 10_000 });
      await expect
        .poll(async () => (await Scrape.from(metricsUrl)).value('rasmon_agent_connected'), { timeout: 30_000 })
        .toBe(0);
      for (let i = 0; i < 3; i += 1) {
        host.step(30_000);
        await sleep(600);
      }
      let spooled: AgentEvent[] = [];
      await vi.waitFor(
        async () => {
          spooled = readSpool(spoolDir).events.filter((event) => event.seq > ackBefore);
          expect(spooled.length).toBeGreaterThan(0);
          expect((await Scrape.from(metricsUrl)).value('rasmon_agent_spool_events')).toBe(spooled.length);
        },
        { timeout: 30_000 },
      );
      await agent.kill();
      const killed = readSpool(spoolDir);
      expect(killed.events.filter((event) => event.seq > ackBefore).length).toBeGreaterThan(0);

      // Both back: the spooled events arrive once, and no snapshot has anything to correct.
      const restarted = await CollectorProcess.start(raw, { port: collector.port, configPath: collector.configPath });
      onTestFinished(() => restarted.stop());
      collector = restarted;
      await startExe();
      await collectorHasTruth(collector);
      await agentIdle();
      expect(await count(collector, 'ras_snapshot_corrections_total', { farm: FARM })).toBe(0);
      expect(await count(collector, 'rasmon_collector_events_total', { result: 'duplicate' })).toBe(0);
      const after = readSpool(spoolDir);
      expect(after.state.stream).toBe(killed.state.stream);
      expect(after.state.acked).toBeGreaterThanOrEqual(killed.events.at(-1)!.seq);
    }, 240_000);
  });
});
