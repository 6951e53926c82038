/**
 * The agent's host key (docs/design.md §6, "Host binding"), end to end on Linux: the agent bin makes
 * its key at its first start (mode 0600), sends it in every hello so the collector binds the host to
 * it, and keeps it across restarts; a second agent with the farm token and the same host name but
 * its own key is refused, and `rasmon-collector rebind-host` lets it in. The exe's own run is in
 * windows-exe.test.ts.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { CollectorLink } from '../agent/src/link/collector-link.js';
import type { Redis } from 'ioredis';
import { COLLECTOR_BIN, CollectorProcess, rawConfig } from './support/collector-harness.js';
import { Scrape } from './support/prometheus-text.js';
import { useRedis } from './support/use-redis.js';

const AGENT_BIN = new URL('../agent/bin/rasmon-agent.js', import.meta.url).pathname;
const run = promisify(execFile);
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const redis = useRedis();
let client: Redis;
let collector: CollectorProcess;
let bindings: string;
let dir: string;

beforeAll(async () => {
  client = redis.client();
  const raw = rawConfig(redis.url, [{ id: 'farm-k', seats: 5 }]);
  bindings = `${(raw.redis as { prefix: string }).prefix}:{farm-k}:bindings`;
  collector = await CollectorProcess.start(raw);
  dir = mkdtempSync(join(tmpdir(), 'rasmon-host-key-'));
  writeFileSync(join(dir, 'token'), 'token-farm-k\n', { mode: 0o600 });
  writeFileSync(
    join(dir, 'sessions.json'),
    JSON.stringify([
      { id: '1-a', user: 'CORP\\alice', admin: false, kind: 'desktop', via: 'ras', state: 'active', since: 1 },
    ]),
  );
});
afterAll(() => collector?.stop());

/** The agent's configuration with its own spool directory (its state folder). */
function config(name: string): { path: string; spool: string } {
  const spool = join(dir, name, 'spool');
  const path = join(dir, `${name}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      collector: collector.url.replace('http://', 'ws://'),
      tokenFile: join(dir, 'token'),
      farm: 'farm-k',
      host: 'rdsh-k1',
      source: 'command',
      command: `cat ${join(dir, 'sessions.json')}`,
      pollIntervalSeconds: 1,
      spool: { dir: spool },
      reconnect: { initialSeconds: 1, maxSeconds: 1, supersededSeconds: 1 },
    }),
  );
  return { path, spool };
}

interface Running {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

function start(configPath: string): Running {
  const child = spawn(process.execPath, [AGENT_BIN, '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RASMON_LOG_LEVEL: 'info' },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  onTestFinished(stop);
  return { child, output: () => output, stop };
}

async function value(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  return (await Scrape.from(collector.url)).value(name, labels);
}

const helloes = () => value('rasmon_collector_frames_total', { type: 'hello', result: 'applied' });
const refused = () => value('rasmon_collector_agents_refused_total', { reason: 'host_bound' });

describe('the agent host key', () => {
  it('is made once at the first start (0600), sent in the hello, kept across restarts; another key is refused until rebind-host', async () => {
    const first = config('first');
    const agent = start(first.path);
    await expect.poll(() => client.hget(bindings, 'rdsh-k1'), { timeout: 20_000 }).not.toBeNull();
    const keyFile = join(first.spool, 'host-key');
    const key = readFileSync(keyFile, 'utf8').trim();
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(await client.hget(bindings, 'rdsh-k1')).toBe(sha256(key));
    await expect.poll(() => value('ras_license_users', { farm: 'farm-k' }), { timeout: 20_000 }).toBe(1);
    await agent.stop();
    expect(agent.output()).not.toContain(key);

    const before = (await helloes()) ?? 0;
    const again = start(first.path);
    await expect.poll(helloes, { timeout: 20_000 }).toBeGreaterThan(before);
    expect(readFileSync(keyFile, 'utf8').trim()).toBe(key);
    expect(await client.hget(bindings, 'rdsh-k1')).toBe(sha256(key));
    expect(await refused()).toBe(0);

    // Another install (its own spool, so its own key) with the farm token and the same host name.
    const second = config('second');
    const other = start(second.path);
    await expect.poll(refused, { timeout: 20_000 }).toBeGreaterThan(0);
    const otherKey = readFileSync(join(second.spool, 'host-key'), 'utf8').trim();
    expect(otherKey).not.toBe(key);
    expect(await client.hget(bindings, 'rdsh-k1')).toBe(sha256(key));
    await again.stop();

    const rebind = await run(process.execPath, [
      COLLECTOR_BIN,
      'rebind-host',
      '--config',
      collector.configPath,
      '--farm',
      'farm-k',
      '--host',
      'rdsh-k1',
    ]);
    expect(rebind.stdout).toContain('unbound host rdsh-k1 of farm farm-k');
    await expect.poll(() => client.hget(bindings, 'rdsh-k1'), { timeout: 20_000 }).toBe(sha256(otherKey));
    await other.stop();
    expect(other.output()).not.toContain(otherKey);
  });

  it('check sends the host key: it passes with the key the host is bound to, and says why it fails with another', async () => {
    // The test above left the host bound to the second install's key.
    const check = (name: string) =>
      run(process.execPath, [AGENT_BIN, 'check', '--config', config(name).path]).then(
        ({ stdout }) => ({ code: 0, stdout }),
        (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout }),
      );
    const bound = await check('second');
    expect(bound.stdout).toMatch(/^ok {3}collector .* accepted the token for farm farm-k, host rdsh-k1/m);
    expect(bound.code).toBe(0);
    const other = await check('first');
    expect(other.stdout).toMatch(
      /^FAIL collector .*: refused the hello: forbidden: host rdsh-k1 of farm farm-k is bound to another agent's host key \(rasmon-collector rebind-host/m,
    );
    expect(other.code).toBe(1);
  });

  it("tells the service why the collector refused the host (the Event Log's 2004): the code and the collector's reason", async () => {
    // Still bound to the second install's key: the first install's key is refused.
    const link = new CollectorLink({
      url: collector.url.replace('http://', 'ws://'),
      token: 'token-farm-k',
      farm: 'farm-k',
      host: 'rdsh-k1',
      hostKey: readFileSync(join(dir, 'first', 'spool', 'host-key'), 'utf8').trim(),
      stream: 'link-test',
      agent: 'rasmon-agent/test',
      log: pino({ level: 'silent' }),
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    const rejected = new Promise<[string, string]>((resolve) => link.once('rejected', (...args) => resolve(args)));
    link.start();
    onTestFinished(() => link.stop());
    const [code, message] = await rejected;
    expect(code).toBe('forbidden');
    expect(message).toMatch(/^host rdsh-k1 of farm farm-k is bound to another agent's host key/);
  });
});
