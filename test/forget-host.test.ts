/**
 * Forgetting hosts: `rasmon-collector forget-host` at once, and retired hosts after
 * forgetHostsAfterDays. A forgotten host leaves no key, no member and no series; one that comes
 * back is a new host.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { Redis } from 'ioredis';
import { useRedis } from './support/use-redis.js';
import { COLLECTOR_BIN, InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, session } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';

const run = promisify(execFile);

const redis = useRedis();
let client: Redis;
beforeAll(() => {
  client = redis.client();
});

async function agent(url: string, host: string, sessions: ReturnType<typeof session>[]): Promise<TestAgent> {
  const a = await TestAgent.connect(url, 'token-farm-a');
  onTestFinished(async () => void (await a.close()));
  await a.hello('farm-a', host, 'stream-1');
  await a.snapshot(1, sessions);
  return a;
}

/** Every trace of a host in Redis: its own keys, and its member or field in each farm key. */
async function traces(prefix: string, host: string): Promise<string[]> {
  const found = await client.keys(`${prefix}:*host:${host}:*`);
  const farm = `${prefix}:{farm-a}:`;
  for (const key of ['seen', 'lease', 'stale']) if ((await client.zscore(farm + key, host)) !== null) found.push(key);
  for (const key of ['retired', 'cdoff']) if (await client.sismember(farm + key, host)) found.push(key);
  for (const key of ['agents', 'counts', 'sources']) if (await client.hexists(farm + key, host)) found.push(key);
  return found;
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [COLLECTOR_BIN, ...args], {
      env: { ...process.env, RASMON_LOG_LEVEL: 'warn' },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('forget-host', () => {
  it('removes one host now: no key, no series, its users stop counting; when it comes back it is a new host', async () => {
    const raw = rawConfig(redis.url, [{ id: 'farm-a', seats: 10 }]);
    const prefix = (raw.redis as { prefix: string }).prefix;
    const c = await InProcessCollector.start(raw);
    onTestFinished(() => c.stop());
    const gone = await agent(c.url, 'rdsh-1', [session('1', 'corp\\ann'), session('2', 'corp\\bob', { admin: true })]);
    await agent(c.url, 'rdsh-2', [session('1', 'corp\\cat')]);
    await gone.close();
    const before = await Scrape.from(c.url);
    // bob's admin desktop is exempt (docs/design.md §2 rule 2).
    expect(before.value('ras_license_users', { farm: 'farm-a' })).toBe(2);
    expect(before.value('ras_connections_exempt', { farm: 'farm-a' })).toBe(1);
    expect(await traces(prefix, 'rdsh-1')).not.toEqual([]);

    const dir = mkdtempSync(join(tmpdir(), 'rasmon-forget-'));
    const configPath = join(dir, 'collector.json');
    writeFileSync(configPath, JSON.stringify(raw));
    const result = await cli(['forget-host', '--config', configPath, '--farm', 'FARM-A', '--host', 'RDSH-1']);
    expect(result).toMatchObject({ code: 0 });
    expect(result.stdout).toContain('forgot host rdsh-1 of farm farm-a');

    expect(await traces(prefix, 'rdsh-1')).toEqual([]);
    const scrape = await Scrape.from(c.url);
    expect(scrape.samples.filter((s) => s.labels.host === 'rdsh-1')).toEqual([]);
    expect(scrape.value('ras_license_users', { farm: 'farm-a' })).toBe(1);
    expect(scrape.value('ras_connections_exempt', { farm: 'farm-a' })).toBe(0);
    expect(scrape.value('ras_host_connections', { farm: 'farm-a', host: 'rdsh-2' })).toBe(1);
    expect(await client.hgetall(`${prefix}:{farm-a}:users`)).toEqual({ 'corp\\cat': '1' });

    // Nothing left to forget; then the host reports again, as a new host.
    expect(await cli(['forget-host', '--config', configPath, '--farm', 'farm-a', '--host', 'rdsh-1'])).toMatchObject({
      code: 1,
    });
    const back = await TestAgent.connect(c.url, 'token-farm-a');
    onTestFinished(async () => void (await back.close()));
    expect((await back.hello('farm-a', 'rdsh-1', 'stream-1')).ack).toBe(0);
    expect(await back.snapshot(1, [session('9', 'corp\\dan')])).toEqual({ type: 'ack', seq: 1 });
    const after = await Scrape.from(c.url);
    expect(after.value('ras_host_connections', { farm: 'farm-a', host: 'rdsh-1' })).toBe(1);
    expect(after.value('ras_license_users', { farm: 'farm-a' })).toBe(2);
    expect(after.value('ras_snapshot_corrections_total', { farm: 'farm-a' })).toBe(0);
  });

  it('refuses bad usage with a clear line', async () => {
    const missing = await cli(['forget-host', '--farm', 'farm-a']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('forget-host needs --farm and --host');
    const bad = await cli(['forget-host', '--farm', 'farm-a', '--host', 'no such host']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('is not a host name');
  });
});

describe('forgetHostsAfterDays', () => {
  it('forgets a retired host once it has not been seen for that long, and keeps the live ones', async () => {
    const raw = rawConfig(redis.url, [{ id: 'farm-a', seats: 10, forgetHostsAfterDays: 3 / 86_400 }], {
      heartbeatSeconds: 1,
      hostRetireSeconds: 1,
    });
    const prefix = (raw.redis as { prefix: string }).prefix;
    const c = await InProcessCollector.start(raw, { tickMs: 100 });
    onTestFinished(() => c.stop());
    const retiring = await agent(c.url, 'rdsh-old', [session('1', 'corp\\eve')]);
    await agent(c.url, 'rdsh-live', [session('1', 'corp\\fay')]);
    await retiring.close();
    // Retired first (1 s), still known …
    await expect
      .poll(async () => (await client.sismember(`${prefix}:{farm-a}:retired`, 'rdsh-old')) === 1, { timeout: 10_000 })
      .toBe(true);
    expect((await Scrape.from(c.url)).value('ras_host_retired', { farm: 'farm-a', host: 'rdsh-old' })).toBe(1);
    // … then forgotten (3 s after it was last seen).
    await expect.poll(() => traces(prefix, 'rdsh-old'), { timeout: 15_000, interval: 200 }).toEqual([]);
    const scrape = await Scrape.from(c.url);
    expect(scrape.samples.filter((s) => s.labels.host === 'rdsh-old')).toEqual([]);
    expect(scrape.value('ras_agent_up', { farm: 'farm-a', host: 'rdsh-live' })).toBe(1);
    expect(scrape.value('ras_license_users', { farm: 'farm-a' })).toBe(1);
  });
});
