/**
 * Enrollment with dist/rasmon-agent.exe under wine64 (docs/design.md §6, "Host binding"): the exe's
 * first start makes its host key and its first hello binds the host; a second exe with the farm
 * token and the same host name (another install, so another key) is refused and changes nothing;
 * once the first host is gone (re-imaged), `rasmon-collector rebind-host` lets the second in.
 *
 * What wine cannot show: the lock on the key file (wine keeps no ACL; see windows-service.test.ts).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { Redis } from 'ioredis';
import { COLLECTOR_BIN, CollectorProcess, rawConfig } from './support/collector-harness.js';
import { Scrape } from './support/prometheus-text.js';
import { useRedis } from './support/use-redis.js';
import { DISPOSE_TIMEOUT_MS, ensureAgentExe, type WineProcess, WINE_MISSING, WinePrefix } from './support/wine.js';

const FARM = 'farm-e';
const HOST = 'rdsh-e1';
const TOKEN = 'token-farm-e';
const run = promisify(execFile);
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
/** A Linux path as the exe sees it: wine maps `/` to drive Z:. */
const windowsPath = (path: string) => `Z:${path.replaceAll('/', '\\')}`;

describe.skipIf(WINE_MISSING !== undefined)('enrollment with rasmon-agent.exe (wine64)', () => {
  const redis = useRedis();
  let wine: WinePrefix;
  let client: Redis;
  let collector: CollectorProcess;
  let bindings: string;
  let dir: string;

  beforeAll(async () => {
    const [, prefix] = await Promise.all([ensureAgentExe(), WinePrefix.create()]);
    wine = prefix;
    client = redis.client();
    const raw = rawConfig(redis.url, [{ id: FARM, seats: 10, token: TOKEN }]);
    bindings = `${(raw.redis as { prefix: string }).prefix}:{${FARM}}:bindings`;
    collector = await CollectorProcess.start(raw);
    dir = mkdtempSync(join(tmpdir(), 'rasmon-enroll-'));
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
    writeFileSync(
      join(dir, 'sessions.json'),
      JSON.stringify([
        { id: '1-a', user: 'CORP\\alice', admin: false, kind: 'desktop', via: 'ras', state: 'active', since: 1 },
      ]),
    );
  }, 600_000);
  afterAll(async () => {
    await collector?.stop();
    await wine?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, DISPOSE_TIMEOUT_MS);

  /** One install of the agent: its configuration and its own state folder. */
  function install(name: string): { config: string; keyFile: string } {
    const spool = join(dir, name, 'spool');
    mkdirSync(join(dir, name), { recursive: true });
    const config = join(dir, name, 'agent.json');
    writeFileSync(
      config,
      JSON.stringify({
        collector: `ws://127.0.0.1:${collector.port}`,
        tokenFile: windowsPath(join(dir, 'token')),
        farm: FARM,
        host: HOST,
        source: 'command',
        command: `type "${windowsPath(join(dir, 'sessions.json'))}"`,
        pollIntervalSeconds: 1,
        spool: { dir: windowsPath(spool) },
        reconnect: { initialSeconds: 0.5, maxSeconds: 1, supersededSeconds: 1 },
      }),
    );
    return { config: windowsPath(config), keyFile: join(spool, 'host-key') };
  }

  async function start(config: string): Promise<WineProcess> {
    const agent = await wine.startExe(['--config', config]);
    onTestFinished(() => agent.kill());
    return agent;
  }

  const value = async (name: string, labels: Record<string, string>) =>
    (await Scrape.from(collector.url)).value(name, labels);

  it('the first hello binds the host; a second install with the farm token is refused until rebind-host', async () => {
    const first = install('first');
    const firstAgent = await start(first.config);
    await expect.poll(() => client.hget(bindings, HOST), { timeout: 90_000, interval: 500 }).not.toBeNull();
    expect(existsSync(first.keyFile)).toBe(true);
    const firstKey = readFileSync(first.keyFile, 'utf8').trim();
    expect(firstKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await client.hget(bindings, HOST)).toBe(sha256(firstKey));
    await expect.poll(() => value('ras_license_users', { farm: FARM }), { timeout: 60_000 }).toBe(1);

    const second = install('second');
    const secondAgent = await start(second.config);
    await expect
      .poll(() => value('rasmon_collector_agents_refused_total', { reason: 'host_bound' }), { timeout: 90_000 })
      .toBeGreaterThan(0);
    const secondKey = readFileSync(second.keyFile, 'utf8').trim();
    expect(secondKey).not.toBe(firstKey);
    expect(await client.hget(bindings, HOST)).toBe(sha256(firstKey));
    expect(await value('ras_agent_up', { farm: FARM, host: HOST })).toBe(1);
    expect(await value('rasmon_collector_supersedes_total', { farm: FARM })).toBe(0);

    // The first host is re-imaged: its agent is gone, and the admin rebinds the name.
    await firstAgent.kill();
    const rebind = await run(process.execPath, [
      COLLECTOR_BIN,
      'rebind-host',
      '--config',
      collector.configPath,
      '--farm',
      FARM,
      '--host',
      HOST,
    ]);
    expect(rebind.stdout).toContain(`unbound host ${HOST} of farm ${FARM}`);
    await expect.poll(() => client.hget(bindings, HOST), { timeout: 60_000, interval: 500 }).toBe(sha256(secondKey));
    await expect.poll(() => value('ras_agent_up', { farm: FARM, host: HOST }), { timeout: 60_000 }).toBe(1);
    for (const output of [firstAgent.stdout + firstAgent.stderr, secondAgent.stdout + secondAgent.stderr]) {
      expect(output).not.toContain(firstKey);
      expect(output).not.toContain(secondKey);
    }
  }, 300_000);
});
