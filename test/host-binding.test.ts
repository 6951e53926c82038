/**
 * Host binding (docs/design.md §6): the first hello with a host key binds the host to it; from then
 * on only that key speaks for the host, whoever holds the farm token. Against the real collector
 * bin, a private Redis and real WebSockets; `rebind-host` and `forget-host` run as operators run
 * them.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { Redis } from 'ioredis';
import type { ErrorFrame } from '@rasmon/protocol';
import { useRedis } from './support/use-redis.js';
import { COLLECTOR_BIN, CollectorProcess, rawConfig } from './support/collector-harness.js';
import { TestAgent, session } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';

const run = promisify(execFile);

const redis = useRedis();
let client: Redis;
beforeAll(() => {
  client = redis.client();
});

const newKey = () => randomBytes(32).toString('base64url');
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

async function collector(farms: Parameters<typeof rawConfig>[1]) {
  const raw = rawConfig(redis.url, farms);
  const proc = await CollectorProcess.start(raw);
  onTestFinished(() => proc.stop());
  const prefix = (raw.redis as { prefix: string }).prefix;
  return { proc, bindings: `${prefix}:{farm-a}:bindings` };
}

async function connect(url: string): Promise<TestAgent> {
  const a = await TestAgent.connect(url, 'token-farm-a');
  onTestFinished(() => a.socket.terminate());
  return a;
}

/** An agent welcomed for `host` with `hostKey` (none: an older agent). */
async function agent(url: string, host: string, hostKey: string | undefined, stream = 'stream-1'): Promise<TestAgent> {
  const a = await connect(url);
  await a.hello('farm-a', host, stream, 'rasmon-agent/test', hostKey);
  return a;
}

/** A hello the collector refuses: the error it sent and the close code. */
async function refusedHello(url: string, host: string, hostKey: string | undefined) {
  const a = await connect(url);
  a.send({ type: 'hello', farm: 'farm-a', host, stream: 'stream-x', ...(hostKey ? { hostKey } : {}) });
  const error = await a.next<ErrorFrame>('error');
  return { error, closed: await a.closed, agent: a };
}

async function value(url: string, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  return (await Scrape.from(url)).value(name, labels);
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [COLLECTOR_BIN, ...args], {
      env: { ...process.env, RASMON_LOG_LEVEL: 'info' },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const users = (n: number, prefix = 'u') => Array.from({ length: n }, (_, i) => session(`s${i}`, `corp\\${prefix}${i}`));

describe('host binding', () => {
  it('a holder of the farm token cannot take over a bound host: refused, counted and logged, the users unchanged', async () => {
    const { proc, bindings } = await collector([{ id: 'farm-a', seats: 5 }]);
    expect(await value(proc.url, 'rasmon_collector_agents_refused_total', { reason: 'host_bound' })).toBe(0);
    const realKey = newKey();
    const real = await agent(proc.url, 'rdsh-1', realKey);
    expect(await client.hget(bindings, 'rdsh-1')).toBe(sha256(realKey));
    expect((await real.snapshot(1, users(8))).seq).toBe(1);
    expect(await value(proc.url, 'ras_license_users', { farm: 'farm-a' })).toBe(8);
    expect(await value(proc.url, 'ras_license_overuse_users', { farm: 'farm-a' })).toBe(3);

    // The attack of issue 22: the farm token, the host's name (any case), another key, an empty snapshot.
    const thiefKey = newKey();
    const thief = await refusedHello(proc.url, 'RDSH-1', thiefKey);
    expect(thief.error.code).toBe('forbidden');
    expect(thief.error.message).toContain('bound to another');
    expect(thief.closed.code).toBe(1008);
    // An agent without a key (or one that leaves it out) is refused the same way.
    const keyless = await refusedHello(proc.url, 'rdsh-1', undefined);
    expect(keyless.error.code).toBe('forbidden');
    expect(keyless.closed.code).toBe(1008);

    expect(await value(proc.url, 'rasmon_collector_agents_refused_total', { reason: 'host_bound' })).toBe(2);
    expect(await value(proc.url, 'ras_license_users', { farm: 'farm-a' })).toBe(8);
    expect(await value(proc.url, 'ras_license_overuse_users', { farm: 'farm-a' })).toBe(3);
    expect(await value(proc.url, 'ras_agent_up', { farm: 'farm-a', host: 'rdsh-1' })).toBe(1);
    expect(await value(proc.url, 'rasmon_collector_supersedes_total', { farm: 'farm-a' })).toBe(0);
    expect(await client.hget(bindings, 'rdsh-1')).toBe(sha256(realKey));
    // The real agent was never superseded and keeps reporting.
    expect((await real.snapshot(2, users(7))).seq).toBe(2);
    expect(await value(proc.url, 'ras_license_users', { farm: 'farm-a' })).toBe(7);

    const log = proc.output.join('');
    const refusal = log
      .split('\n')
      .filter((line) => line.includes('host_bound'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(refusal[0]).toMatchObject({ farm: 'farm-a', reason: 'host_bound', status: 'forbidden' });
    expect(refusal[0]!.detail).toContain('host rdsh-1 of farm farm-a');
    for (const secret of [realKey, thiefKey, sha256(realKey), sha256(thiefKey), 'token-farm-a'])
      expect(log).not.toContain(secret);
  });

  it('rebind-host frees a bound host: the next hello with a key binds it, and the old key is refused', async () => {
    const { proc, bindings } = await collector([{ id: 'farm-a', seats: 5 }]);
    const oldKey = newKey();
    const old = await agent(proc.url, 'rdsh-1', oldKey);
    await old.snapshot(1, users(2));
    const reimaged = newKey();
    expect((await refusedHello(proc.url, 'rdsh-1', reimaged)).error.code).toBe('forbidden');

    const done = await cli(['rebind-host', '--config', proc.configPath, '--farm', 'farm-a', '--host', 'RDSH-1']);
    expect(done.code).toBe(0);
    expect(done.stdout).toContain('unbound host rdsh-1 of farm farm-a');
    expect(done.stdout + done.stderr).toContain('host binding removed by rebind-host');
    expect(await client.hexists(bindings, 'rdsh-1')).toBe(0);
    // Not bound any more: a second rebind has nothing to remove.
    const again = await cli(['rebind-host', '--config', proc.configPath, '--farm', 'farm-a', '--host', 'rdsh-1']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('is not bound to a host key');

    const fresh = await agent(proc.url, 'rdsh-1', reimaged, 'stream-2');
    expect(await client.hget(bindings, 'rdsh-1')).toBe(sha256(reimaged));
    expect((await fresh.snapshot(1, users(3))).seq).toBe(1);
    expect(await old.closed).toMatchObject({ code: 1008 });
    expect(await value(proc.url, 'rasmon_collector_supersedes_total', { farm: 'farm-a' })).toBe(1);
    expect((await refusedHello(proc.url, 'rdsh-1', oldKey)).error.code).toBe('forbidden');
    expect(await value(proc.url, 'ras_license_users', { farm: 'farm-a' })).toBe(3);
  });

  it('an older agent without a key is let in on an unbound host, warned of once, and a keyed agent binds it later', async () => {
    const { proc, bindings } = await collector([{ id: 'farm-a', seats: 5 }]);
    const first = await agent(proc.url, 'rdsh-1', undefined);
    await first.snapshot(1, users(2));
    await first.close();
    const second = await agent(proc.url, 'rdsh-1', undefined);
    expect((await second.snapshot(2, users(3))).seq).toBe(2);
    expect(await client.hexists(bindings, 'rdsh-1')).toBe(0);
    const warnings = proc.output
      .join('')
      .split('\n')
      .filter((line) => line.includes('agent sent no host key'));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({ farm: 'farm-a', host: 'rdsh-1' });
    expect(warnings[0]).toContain('can be taken over by any holder of the farm token');
    await second.close();

    const upgraded = newKey();
    await agent(proc.url, 'rdsh-1', upgraded, 'stream-2');
    expect(await client.hget(bindings, 'rdsh-1')).toBe(sha256(upgraded));
    expect((await refusedHello(proc.url, 'rdsh-1', undefined)).error.code).toBe('forbidden');
  });

  it('Redis losing its data loses the bindings: the connected agent binds its host again as it takes it back', async () => {
    const { proc, bindings } = await collector([{ id: 'farm-a', seats: 5 }]);
    const key = newKey();
    const a = await agent(proc.url, 'rdsh-1', key);
    await a.snapshot(1, users(2));
    await client.flushall();
    expect(await a.next('resync', 15_000)).toEqual({ type: 'resync' });
    expect(await client.hget(bindings, 'rdsh-1')).toBe(sha256(key));
    expect((await a.snapshot(2, users(2))).seq).toBe(2);
    expect((await refusedHello(proc.url, 'rdsh-1', newKey())).error.code).toBe('forbidden');
  });

  it("a token's own hosts are checked before the binding: another token with the host's very key is refused as token_hosts", async () => {
    const { proc, bindings } = await collector([
      {
        id: 'farm-a',
        seats: 5,
        agentTokensSha256: [
          { sha256: sha256('token-rdsh-1'), hosts: ['rdsh-1'] },
          { sha256: sha256('token-rdsh-2'), hosts: ['rdsh-2'] },
        ],
      },
    ]);
    const key = newKey();
    const own = await TestAgent.connect(proc.url, 'token-rdsh-1');
    onTestFinished(() => own.socket.terminate());
    await own.hello('farm-a', 'rdsh-1', 'stream-1', undefined, key);
    expect(await client.hget(bindings, 'rdsh-1')).toBe(sha256(key));
    const other = await TestAgent.connect(proc.url, 'token-rdsh-2');
    onTestFinished(() => other.socket.terminate());
    other.send({ type: 'hello', farm: 'farm-a', host: 'rdsh-1', stream: 'stream-x', hostKey: key });
    expect((await other.next<ErrorFrame>('error')).message).toBe('this token may not claim host rdsh-1');
    expect(await value(proc.url, 'rasmon_collector_upgrades_rejected_total', { reason: 'token_hosts' })).toBe(1);
    expect(await value(proc.url, 'rasmon_collector_agents_refused_total', { reason: 'host_bound' })).toBe(0);
    expect(await value(proc.url, 'rasmon_collector_supersedes_total', { farm: 'farm-a' })).toBe(0);
  });

  it('forget-host removes the binding with the host: a host of that name comes back as a new one', async () => {
    const { proc, bindings } = await collector([{ id: 'farm-a', seats: 5 }]);
    const a = await agent(proc.url, 'rdsh-1', newKey());
    await a.snapshot(1, users(1));
    await a.close();
    const forgot = await cli(['forget-host', '--config', proc.configPath, '--farm', 'farm-a', '--host', 'rdsh-1']);
    expect(forgot.code).toBe(0);
    expect(await client.hexists(bindings, 'rdsh-1')).toBe(0);
    const next = newKey();
    await agent(proc.url, 'rdsh-1', next, 'stream-2');
    expect(await client.hget(bindings, 'rdsh-1')).toBe(sha256(next));
  });

  it('hostBinding none: any key takes the host as before (a supersede, counted), nothing is bound, and startup warns', async () => {
    const { proc, bindings } = await collector([
      { id: 'farm-a', seats: 5, hostBinding: 'none' },
      { id: 'farm-b', seats: 5 },
    ]);
    const warning = proc.output
      .join('')
      .split('\n')
      .find((line) => line.includes('hostBinding: none'));
    expect(warning && JSON.parse(warning)).toMatchObject({ farm: 'farm-a' });
    expect(proc.output.join('')).not.toContain('farm farm-b has hostBinding');
    expect(await value(proc.url, 'rasmon_collector_supersedes_total', { farm: 'farm-a' })).toBe(0);
    expect(await value(proc.url, 'rasmon_collector_supersedes_total', { farm: 'farm-b' })).toBe(0);

    const first = await agent(proc.url, 'rdsh-1', newKey());
    await first.snapshot(1, users(4));
    const second = await agent(proc.url, 'rdsh-1', newKey(), 'stream-2');
    expect((await first.closed).code).toBe(1008);
    expect((await second.snapshot(1, [])).seq).toBe(1);
    expect(await value(proc.url, 'ras_license_users', { farm: 'farm-a' })).toBe(0);
    expect(await client.hlen(bindings)).toBe(0);
    expect(await value(proc.url, 'rasmon_collector_supersedes_total', { farm: 'farm-a' })).toBe(1);
    expect(await value(proc.url, 'rasmon_collector_agents_refused_total', { reason: 'host_bound' })).toBe(0);
  });
});
