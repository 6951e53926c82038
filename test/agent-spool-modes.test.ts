/**
 * The Linux agent's spool folder is its own: `rasmon-agent --config FILE` run under umask 000
 * against a real collector writes every file there 0600 in a 0700 folder, narrows what an earlier
 * version left open, and refuses a folder every user may write to.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { Scrape } from './support/prometheus-text.js';
import { freePort } from './support/free-port.js';
import { useRedis } from './support/use-redis.js';

const BIN = new URL('../agent/bin/rasmon-agent.js', import.meta.url).pathname;
const FARM = 'farm-m';
const TOKEN = 'token-farm-m';

const redis = useRedis();
let collector: InProcessCollector;
let dir: string;

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8).padStart(4, '0');

/** Every entry of the spool folder with its mode. */
function modes(spool: string): Record<string, string> {
  return Object.fromEntries(readdirSync(spool).map((name) => [name, mode(join(spool, name))]));
}

interface Run {
  child: ReturnType<typeof spawn>;
  output: () => string;
  exited: Promise<number | null>;
}

/** The bin under umask 000, so whatever it does not set itself would come out 0666 / 0777. */
async function runAgent(name: string, spool: string): Promise<Run & { metricsUrl: string }> {
  const metricsPort = await freePort();
  const configPath = join(dir, `${name}.json`);
  writeFileSync(
    configPath,
    JSON.stringify({
      collector: collector.url.replace('http://', 'ws://'),
      tokenFile: join(dir, 'token'),
      farm: FARM,
      host: name,
      source: 'simulate',
      simulate: { users: 5, targetSessions: 4, logonsPerMinute: 600 },
      pollIntervalSeconds: 0.2,
      spool: { dir: spool },
      metrics: { listen: `127.0.0.1:${metricsPort}` },
    }),
  );
  const child = spawn('sh', ['-c', `umask 000; exec "${process.execPath}" "${BIN}" --config "${configPath}"`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: string[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, output: () => chunks.join(''), exited, metricsUrl: `http://127.0.0.1:${metricsPort}` };
}

/** Runs the agent until the collector acked what it sent, then stops it with SIGTERM (its spool closed). */
async function runUntilAcked(name: string, spool: string): Promise<string> {
  const agent = await runAgent(name, spool);
  await vi.waitFor(
    async () => {
      if (agent.child.exitCode !== null) throw new Error(`agent exited ${agent.child.exitCode}: ${agent.output()}`);
      const scrape = await Scrape.from(agent.metricsUrl);
      expect(scrape.value('rasmon_agent_connected')).toBe(1);
      expect(scrape.value('rasmon_agent_sessions')).toBeGreaterThan(0);
      expect(scrape.value('rasmon_agent_last_ack_timestamp_seconds')).toBeGreaterThan(0);
      expect(scrape.value('rasmon_agent_spool_events')).toBe(0);
    },
    { timeout: 30_000, interval: 100 },
  );
  agent.child.kill('SIGTERM');
  expect(await agent.exited).toBe(0);
  return agent.output();
}

describe.skipIf(process.platform === 'win32')('the Linux agent keeps its spool to itself', () => {
  beforeAll(async () => {
    collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: FARM, seats: 50, token: TOKEN }]));
    dir = mkdtempSync(join(tmpdir(), 'rasmon-spool-modes-'));
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    await collector?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('creates the spool folder 0700 and every file in it 0600, whatever the umask', async () => {
    const spool = join(dir, 'new', 'spool');
    await runUntilAcked('rdsh-m1', spool);
    expect(mode(spool)).toBe('0700');
    // The parent it had to create as well.
    expect(mode(join(dir, 'new'))).toBe('0700');
    const files = modes(spool);
    // The spool's state, its latest ack, the events and the session journal, nothing else left open.
    expect(Object.keys(files)).toEqual(
      expect.arrayContaining(['state.json', 'acked.json', 'events.log', 'sessions.log']),
    );
    for (const [name, fileMode] of Object.entries(files)) expect(fileMode, name).toBe('0600');
  });

  it('narrows a spool folder and files an earlier version left readable by every user', async () => {
    const spool = join(dir, 'old-spool');
    mkdirSync(spool);
    chmodSync(spool, 0o755);
    // What an earlier agent left: the same files, 0644 (and a log set aside once).
    for (const name of ['sessions.log', 'events.log.corrupt-2026-01-01T00-00-00-000Z']) {
      writeFileSync(join(spool, name), '');
      chmodSync(join(spool, name), 0o644);
    }
    const output = await runUntilAcked('rdsh-m2', spool);
    expect(output).toContain('spool folder was open to other users: now 0700');
    expect(output).toContain('spool files were readable by other users: now 0600');
    expect(mode(spool)).toBe('0700');
    for (const [name, fileMode] of Object.entries(modes(spool))) expect(fileMode, name).toBe('0600');
  });

  it('refuses a spool folder every user may write to, saying which and what to do', async () => {
    const shared = join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const agent = await runAgent('rdsh-m3', shared);
    expect(await agent.exited).toBe(2);
    expect(agent.output()).toContain(
      `spool folder ${shared} is writable by every user (mode 1777): give the agent a folder of its own (spool.dir)`,
    );
    // Left as it was, nothing written.
    expect(statSync(shared).mode & 0o7777).toBe(0o1777);
    expect(readdirSync(shared)).toEqual([]);
  });
});
