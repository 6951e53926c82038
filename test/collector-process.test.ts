/**
 * The collector as operators run it (docs/design.md §4): the real `rasmon-collector` bin as a child
 * process, its exit codes and stderr on bad configuration, the environment overrides, and what
 * SIGHUP and SIGTERM do to a running collector with agents connected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import type { Redis } from 'ioredis';
import { RedisKeys } from '@rasmon/collector';
import type { ErrorFrame } from '@rasmon/protocol';
import { freePort } from './support/free-port.js';
import { useRedis } from './support/use-redis.js';
import { COLLECTOR_BIN, CollectorProcess, rawConfig, sha256 } from './support/collector-harness.js';
import { TestAgent, UpgradeRefused, session, upsert } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';

const redis = useRedis();
let client: Redis;
beforeAll(() => {
  client = redis.client();
});

/** The environment of a child without any of the variables the collector reads. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, RASMON_LOG_LEVEL: 'info' };
  delete env.RASMON_CONFIG;
  delete env.REDIS_URL;
  delete env.RASMON_LISTEN;
  return { ...env, ...extra };
}

function tempFile(name: string, content: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'rasmon-process-')), name);
  writeFileSync(path, content);
  return path;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin to completion (killed after 10 s, which fails the test through its exit code). */
function runBin(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [COLLECTOR_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Starts the bin and leaves it running; the test's cleanup kills it. */
function startBin(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: string[] } {
  const child = spawn(process.execPath, [COLLECTOR_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const output: string[] = [];
  child.stdout.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, output };
}

async function status(url: string): Promise<number> {
  return (await fetch(url)).status;
}

/** A valid config file (JSON) for farm-a, listening on the given port. */
function goodConfig(redisUrl: string, port: number): Record<string, unknown> {
  return { ...rawConfig(redisUrl, [{ id: 'farm-a', seats: 5 }]), listen: `127.0.0.1:${port}` };
}

describe('rasmon-collector command line', () => {
  const badConfigs: Array<{ name: string; edit: (config: any) => void; key: string }> = [
    { name: 'an unknown top-level key', edit: (c) => (c.listne = '127.0.0.1:1'), key: 'listne' },
    { name: 'an unknown key inside a farm', edit: (c) => (c.farms[0].seets = 5), key: 'farms[0].seets' },
    { name: 'negative seats', edit: (c) => (c.farms[0].seats = -1), key: 'farms[0].seats' },
    { name: 'seats that are not a number', edit: (c) => (c.farms[0].seats = 'many'), key: 'farms[0].seats' },
    { name: 'fractional seats', edit: (c) => (c.farms[0].seats = 2.5), key: 'farms[0].seats' },
  ];

  it.each(badConfigs)('a config with $name exits 2 with one stderr line naming $key', async ({ edit, key }) => {
    const config = goodConfig(redis.url, 1);
    edit(config);
    const file = tempFile('collector.json', JSON.stringify(config));
    const run = await runBin(['--config', file]);
    expect(run.code).toBe(2);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(key);
    expect(run.stdout).toBe('');
  });

  it('a missing config file exits 2 with one stderr line naming the file', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'rasmon-process-')), 'absent.yaml');
    const run = await runBin(['--config', file]);
    expect(run.code).toBe(2);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(file);
    expect(lines[0]).toMatch(/not found/);
  });

  it('no --config and no RASMON_CONFIG exits 2 naming both', async () => {
    const run = await runBin([]);
    expect(run.code).toBe(2);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('--config');
    expect(lines[0]).toContain('RASMON_CONFIG');
  });

  it('an unknown flag exits 2 with one line naming the flag, then the usage', async () => {
    const run = await runBin(['--confg', '/etc/rasmon/collector.yaml']);
    expect(run.code).toBe(2);
    const [first, ...rest] = run.stderr.trimEnd().split('\n');
    expect(first).toContain('--confg');
    // Whatever follows the one error line is the usage text, and nothing else.
    if (rest.length > 0) expect(rest[0]).toMatch(/^Usage: rasmon-collector --config FILE/);
    expect(rest.join('\n')).not.toContain('--confg');
  });

  it('--help prints the usage and exits 0', async () => {
    const run = await runBin(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Usage: rasmon-collector --config FILE/);
    expect(run.stdout).toContain('--config');
    expect(run.stderr).toBe('');
  });

  it('--config wins over RASMON_CONFIG', async () => {
    // The file named by the environment is broken, so using it would exit 2 naming its bad key.
    const envFile = tempFile('env.json', JSON.stringify({ ...goodConfig(redis.url, 1), fromEnvironment: true }));
    const alone = await runBin([], cleanEnv({ RASMON_CONFIG: envFile }));
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('fromEnvironment');

    const port = await freePort();
    const flagFile = tempFile('flag.json', JSON.stringify(goodConfig(redis.url, port)));
    const { child, output } = startBin(['--config', flagFile], cleanEnv({ RASMON_CONFIG: envFile }));
    await vi.waitFor(
      async () => {
        expect(child.exitCode, output.join('')).toBeNull();
        expect(await status(`http://127.0.0.1:${port}/readyz`)).toBe(200);
      },
      { timeout: 10_000 },
    );
  });

  it("RASMON_LISTEN overrides the file's listen address", async () => {
    const filePort = await freePort();
    const envPort = await freePort();
    const file = tempFile('listen.json', JSON.stringify(goodConfig(redis.url, filePort)));
    const { child, output } = startBin(['--config', file], cleanEnv({ RASMON_LISTEN: `127.0.0.1:${envPort}` }));
    await vi.waitFor(
      async () => {
        expect(child.exitCode, output.join('')).toBeNull();
        expect(await status(`http://127.0.0.1:${envPort}/readyz`)).toBe(200);
      },
      { timeout: 10_000 },
    );
    await expect(fetch(`http://127.0.0.1:${filePort}/healthz`)).rejects.toThrow();
  });

  it("REDIS_URL overrides the file's redis url", async () => {
    const deadRedis = `redis://127.0.0.1:${await freePort()}`;
    // Control: with the file's dead Redis the collector serves but is not ready.
    const controlPort = await freePort();
    const control = startBin(
      ['--config', tempFile('dead.json', JSON.stringify(goodConfig(deadRedis, controlPort)))],
      cleanEnv(),
    );
    await expect.poll(() => status(`http://127.0.0.1:${controlPort}/healthz`), { timeout: 10_000 }).toBe(200);
    expect(await status(`http://127.0.0.1:${controlPort}/readyz`)).toBe(503);
    expect(control.child.exitCode).toBeNull();

    const port = await freePort();
    const file = tempFile('dead-overridden.json', JSON.stringify(goodConfig(deadRedis, port)));
    const { child, output } = startBin(['--config', file], cleanEnv({ REDIS_URL: redis.url }));
    await vi.waitFor(
      async () => {
        expect(child.exitCode, output.join('')).toBeNull();
        expect(await status(`http://127.0.0.1:${port}/readyz`)).toBe(200);
      },
      { timeout: 10_000 },
    );
  });
});

/** A collector process with the given farms, and the helpers a reload test needs. */
async function processWith(
  farms: Array<Record<string, unknown> & { id: string; seats: number }>,
  extra: Record<string, unknown> = {},
) {
  const raw = rawConfig(redis.url, farms, extra);
  const proc = await CollectorProcess.start(raw);
  onTestFinished(() => proc.stop());
  const agents: TestAgent[] = [];
  onTestFinished(() => {
    for (const a of agents) a.socket.terminate();
  });
  const connect = async (token: string) => {
    const agent = await TestAgent.connect(proc.url, token);
    agents.push(agent);
    return agent;
  };
  /** Rewrites the file with farms changed by `edit` (same prefix) and sends SIGHUP. */
  const reload = (edit: (farms: any[]) => any[]) => {
    const next = structuredClone(raw);
    next.farms = edit(next.farms as any[]);
    proc.rewrite(next);
    proc.signal('SIGHUP');
  };
  const scrape = () => Scrape.from(proc.url);
  const keys = new RedisKeys((raw.redis as { prefix: string }).prefix);
  return { raw, proc, connect, reload, scrape, keys };
}

const isOpen = (agent: TestAgent) => agent.socket.readyState === agent.socket.OPEN;

describe('SIGHUP reload', () => {
  it('a changed seat count shows in ras_license_seats and connected agents stay connected', async () => {
    const c = await processWith([{ id: 'farm-a', seats: 5 }]);
    const agent = await c.connect('token-farm-a');
    await agent.hello('farm-a', 'rdsh-1');
    await agent.snapshot(1, [session('1', 'corp\\alice')]);
    const before = await c.scrape();
    expect(before.value('ras_license_seats', { farm: 'farm-a' })).toBe(5);
    const hashBefore = before.all('rasmon_collector_config_info')[0]?.labels.hash;

    c.reload((farms) => farms.map((farm) => ({ ...farm, seats: 7 })));
    const after = await vi.waitFor(
      async () => {
        const scrape = await c.scrape();
        expect(scrape.value('ras_license_seats', { farm: 'farm-a' })).toBe(7);
        return scrape;
      },
      { timeout: 10_000 },
    );
    expect(after.all('rasmon_collector_config_info')[0]?.labels.hash).not.toBe(hashBefore);
    expect(after.value('ras_license_users', { farm: 'farm-a' })).toBe(1);

    // Still the same connection, and it still works.
    expect(isOpen(agent)).toBe(true);
    expect(agent.received.filter((frame) => frame.type === 'error')).toEqual([]);
    expect((await agent.events([upsert(2, session('2', 'corp\\bob'))])).seq).toBe(2);
    expect((await c.scrape()).value('ras_license_users', { farm: 'farm-a' })).toBe(2);
    expect(isOpen(agent)).toBe(true);
  });

  it('a revoked token closes its connection with forbidden and 1008, and is refused with 401 after', async () => {
    const c = await processWith([
      { id: 'farm-a', seats: 5, agentTokensSha256: [sha256('token-revoked'), sha256('token-kept')] },
    ]);
    const revoked = await c.connect('token-revoked');
    await revoked.hello('farm-a', 'rdsh-1');
    const kept = await c.connect('token-kept');
    await kept.hello('farm-a', 'rdsh-2');

    c.reload((farms) => farms.map((farm) => ({ ...farm, agentTokensSha256: [sha256('token-kept')] })));
    const error = await revoked.next<ErrorFrame>('error');
    expect(error.code).toBe('forbidden');
    expect((await vi.waitFor(() => revoked.closed, { timeout: 10_000 })).code).toBe(1008);

    await expect(TestAgent.connect(c.proc.url, 'token-revoked')).rejects.toSatisfy(
      (err) => err instanceof UpgradeRefused && err.status === 401,
    );
    // The other token of the farm is untouched.
    expect(isOpen(kept)).toBe(true);
    expect((await kept.snapshot(1, [session('1', 'corp\\carol')])).seq).toBe(1);
    const fresh = await c.connect('token-kept');
    expect((await fresh.hello('farm-a', 'rdsh-3')).type).toBe('welcome');
  });

  it('a reload that binds a token to other hosts closes its connections for them, and keeps the rest', async () => {
    const c = await processWith([{ id: 'farm-a', seats: 5, agentTokensSha256: [sha256('token-a')] }]);
    const moved = await c.connect('token-a');
    await moved.hello('farm-a', 'rdsh-1');
    const stays = await c.connect('token-a');
    await stays.hello('farm-a', 'rdsh-2');
    const revokedBefore = (await c.scrape()).value('rasmon_collector_upgrades_rejected_total', { reason: 'revoked' })!;

    c.reload((farms) =>
      farms.map((farm) => ({ ...farm, agentTokensSha256: [{ sha256: sha256('token-a'), hosts: ['rdsh-2'] }] })),
    );
    const error = await moved.next<ErrorFrame>('error');
    expect(error).toMatchObject({
      code: 'forbidden',
      message: 'this token may not claim host rdsh-1 (changed by a reload)',
    });
    expect((await vi.waitFor(() => moved.closed, { timeout: 10_000 })).code).toBe(1008);
    expect((await c.scrape()).value('rasmon_collector_upgrades_rejected_total', { reason: 'revoked' })).toBe(
      revokedBefore + 1,
    );
    expect(isOpen(stays)).toBe(true);
    expect((await stays.snapshot(1, [session('1', 'corp\\carol')])).seq).toBe(1);
  });

  it('a removed farm loses its series and refuses its agents, keeps its Redis state, and comes back as it was', async () => {
    const c = await processWith([
      { id: 'farm-a', seats: 5 },
      { id: 'farm-b', seats: 3 },
    ]);
    const a = await c.connect('token-farm-a');
    await a.hello('farm-a', 'rdsh-a1');
    await a.snapshot(1, [session('1', 'corp\\alice')]);
    const b = await c.connect('token-farm-b');
    await b.hello('farm-b', 'rdsh-b1');
    await b.snapshot(1, [
      session('1', 'corp\\bob'),
      session('2', 'corp\\carol'),
      session('3', 'corp\\bob', { kind: 'app' }),
    ]);
    const before = await c.scrape();
    expect(before.value('ras_license_users', { farm: 'farm-b' })).toBe(2);
    expect(before.samples.filter((s) => s.labels.farm === 'farm-b').length).toBeGreaterThan(10);

    c.reload((farms) => farms.filter((farm) => farm.id !== 'farm-b'));
    await vi.waitFor(
      async () => {
        const scrape = await c.scrape();
        expect(scrape.samples.filter((s) => s.labels.farm === 'farm-b').map((s) => s.name)).toEqual([]);
      },
      { timeout: 10_000 },
    );
    // Its connected agent is closed and a new one is refused.
    expect((await b.next<ErrorFrame>('error')).code).toBe('forbidden');
    expect((await vi.waitFor(() => b.closed, { timeout: 10_000 })).code).toBe(1008);
    await expect(TestAgent.connect(c.proc.url, 'token-farm-b')).rejects.toSatisfy(
      (err) => err instanceof UpgradeRefused && err.status === 401,
    );
    // farm-a carries on.
    const scrape = await c.scrape();
    expect(scrape.value('ras_license_users', { farm: 'farm-a' })).toBe(1);
    expect(isOpen(a)).toBe(true);
    // Its Redis state is kept.
    expect(await client.hlen(c.keys.farm('farm-b').users)).toBe(2);
    expect(await client.hlen(c.keys.host('farm-b', 'rdsh-b1').conns)).toBe(3);

    c.reload((farms) => farms);
    await vi.waitFor(
      async () => {
        const back = await c.scrape();
        expect(back.value('ras_license_users', { farm: 'farm-b' })).toBe(2);
        expect(back.value('ras_host_connections', { farm: 'farm-b', host: 'rdsh-b1' })).toBe(3);
        expect(back.value('ras_license_seats', { farm: 'farm-b' })).toBe(3);
      },
      { timeout: 10_000 },
    );
    const agent = await c.connect('token-farm-b');
    expect((await agent.hello('farm-b', 'rdsh-b1')).ack).toBe(1);
  });

  it('the host of a connection closed by its farm removal is stale when the farm comes back', async () => {
    // docs/design.md §2 rule 10: a lease is released at once when its connection closes, whatever closed it.
    const c = await processWith([
      { id: 'farm-a', seats: 5 },
      { id: 'farm-b', seats: 3 },
    ]);
    const b = await c.connect('token-farm-b');
    await b.hello('farm-b', 'rdsh-b1');
    await b.snapshot(1, [session('1', 'corp\\bob')]);
    c.reload((farms) => farms.filter((farm) => farm.id !== 'farm-b'));
    expect((await vi.waitFor(() => b.closed, { timeout: 10_000 })).code).toBe(1008);

    c.reload((farms) => farms);
    const scrape = await vi.waitFor(
      async () => {
        const s = await c.scrape();
        expect(s.value('ras_license_users', { farm: 'farm-b' })).toBe(1);
        return s;
      },
      { timeout: 10_000 },
    );
    // Nothing holds a connection for rdsh-b1, and the lease (3 × 15 s) would not have lapsed yet.
    expect(scrape.value('ras_agent_up', { farm: 'farm-b', host: 'rdsh-b1' })).toBe(0);
    expect(scrape.value('ras_license_users_unverified', { farm: 'farm-b' })).toBe(1);
  });

  it('a reload that changes only the case of a farm id closes its agents, which come back under the new spelling', async () => {
    // The farm's Redis keys are named by its id as written (docs/design.md §4).
    const c = await processWith([{ id: 'farm-a', seats: 5 }]);
    const agent = await c.connect('token-farm-a');
    await agent.hello('farm-a', 'rdsh-1');
    await agent.snapshot(1, [session('1', 'corp\\alice')]);
    c.reload((farms) => farms.map((farm) => ({ ...farm, id: 'Farm-A' })));
    expect(await agent.next<ErrorFrame>('error')).toMatchObject({
      code: 'forbidden',
      message: 'farm farm-a is now configured as Farm-A',
    });
    expect((await vi.waitFor(() => agent.closed, { timeout: 10_000 })).code).toBe(1008);
    // Released under the old spelling at once, not left to its lease.
    await expect.poll(() => client.zscore(c.keys.farm('farm-a').lease, 'rdsh-1'), { timeout: 10_000 }).toBeNull();
    const back = await c.connect('token-farm-a');
    expect((await back.hello('farm-a', 'rdsh-1')).ack).toBe(0);
    expect((await back.snapshot(1, [session('1', 'corp\\alice')])).seq).toBe(1);
    expect(await client.hlen(c.keys.farm('Farm-A').users)).toBe(1);
    expect((await c.scrape()).value('ras_license_users', { farm: 'Farm-A' })).toBe(1);
  });

  it('a broken config on SIGHUP leaves the collector running with the old one', async () => {
    const c = await processWith([{ id: 'farm-a', seats: 5 }]);
    const agent = await c.connect('token-farm-a');
    await agent.hello('farm-a', 'rdsh-1');
    await agent.snapshot(1, [session('1', 'corp\\alice')]);

    c.reload((farms) => farms.map((farm) => ({ ...farm, seats: -1 })));
    const refusal = await vi.waitFor(
      () => {
        const line = c.proc.output
          .join('')
          .split('\n')
          .find((l) => l.includes('reload refused'));
        expect(line).toBeDefined();
        return line!;
      },
      { timeout: 10_000 },
    );
    expect(refusal).toContain('farms[0].seats');
    expect(c.proc.child.exitCode).toBeNull();
    expect(await status(`${c.proc.url}/readyz`)).toBe(200);
    const scrape = await c.scrape();
    expect(scrape.value('ras_license_seats', { farm: 'farm-a' })).toBe(5);
    expect(isOpen(agent)).toBe(true);
    expect((await agent.events([upsert(2, session('2', 'corp\\bob'))])).seq).toBe(2);

    // A file that does not parse at all is refused the same way.
    writeFileSync(c.proc.configPath, '{ "farms": [');
    c.proc.signal('SIGHUP');
    await expect
      .poll(
        () =>
          c.proc.output
            .join('')
            .split('\n')
            .filter((l) => l.includes('reload refused')),
        { timeout: 10_000 },
      )
      .toHaveLength(2);
    expect(c.proc.child.exitCode).toBeNull();

    // And the next good file is taken.
    c.reload((farms) => farms.map((farm) => ({ ...farm, seats: 9 })));
    await expect
      .poll(async () => (await c.scrape()).value('ras_license_seats', { farm: 'farm-a' }), { timeout: 10_000 })
      .toBe(9);
    expect(isOpen(agent)).toBe(true);
  });
});

describe('SIGTERM', () => {
  it("drains a frame in flight, acks it, keeps the host's lease, closes agents with 1001 and exits 0", async () => {
    const c = await processWith([{ id: 'farm-a', seats: 5 }]);
    const agent = await c.connect('token-farm-a');
    await agent.hello('farm-a', 'rdsh-1');
    await agent.snapshot(1, [session('1', 'corp\\alice')]);

    // Hold every write in Redis so the next frame is still being applied when SIGTERM arrives. The
    // pause is lifted by the test once the collector is draining, not by a timeout that a busy machine
    // can outlast before the frame reaches Redis.
    await client.call('CLIENT', 'PAUSE', '60000', 'WRITE');
    try {
      agent.send({ type: 'events', events: [upsert(2, session('2', 'corp\\bob'))] });
      await vi.waitFor(
        async () => {
          const list = String(await client.call('CLIENT', 'LIST'));
          // A script of the collector's held: the frame's, or a heartbeat's lease renewal or a farm
          // clock round with the frame queued behind it on the same connection. A script's first run
          // on a connection is sent whole (EVAL, as ioredis does), its later ones by hash (EVALSHA).
          expect(list).toMatch(/name=rasmon-collector .*flags=b .*cmd=eval(sha)? /);
        },
        { timeout: 20_000 },
      );
      c.proc.signal('SIGTERM');
      await vi.waitFor(() => expect(c.proc.output.join('')).toContain('"msg":"draining"'), { timeout: 10_000 });
      await sleep(200);
    } finally {
      await client.call('CLIENT', 'UNPAUSE');
    }

    const ack = await agent.next('ack');
    expect(ack).toEqual({ type: 'ack', seq: 2 });
    expect((await vi.waitFor(() => agent.closed, { timeout: 20_000 })).code).toBe(1001);
    expect(await vi.waitFor(() => c.proc.exited, { timeout: 20_000 })).toEqual({ code: 0, signal: null });
    // What was acked is in Redis, and the host's lease was handed over on the way out, not released
    // (docs/design.md §2 rule 10): live, for its agent to take again on the next collector.
    expect(await client.hlen(c.keys.farm('farm-a').users)).toBe(2);
    const [seconds] = (await client.time()) as [string | number, string | number];
    expect(Number(await client.zscore(c.keys.farm('farm-a').lease, 'rdsh-1'))).toBeGreaterThan(Number(seconds) * 1000);
    expect(await client.hget(c.keys.host('farm-a', 'rdsh-1').host, 'live')).toBe('1');
  });
});

describe('secrets', () => {
  it('agent tokens never appear in the log', async () => {
    const token = `tok-${randomBytes(16).toString('hex')}`;
    const other = `tok-${randomBytes(16).toString('hex')}`;
    const apiToken = `api-${randomBytes(16).toString('hex')}`;
    const c = await processWith(
      [
        { id: 'farm-a', seats: 5, agentTokensSha256: [sha256(token), sha256(other)] },
        { id: 'farm-b', seats: 5 },
      ],
      { api: { tokensSha256: [sha256(apiToken)] } },
    );
    const api = (bearer: string) =>
      fetch(`${c.proc.url}/api/v1/farms`, { headers: { Authorization: `Bearer ${bearer}` } });
    expect((await api(apiToken)).status).toBe(200);
    expect((await api(token)).status).toBe(401);
    const agent = await c.connect(token);
    await agent.hello('farm-a', 'rdsh-1');
    await agent.snapshot(1, [session('1', 'corp\\alice')]);
    // A token for the wrong farm, a bad frame, an unknown token, and a revocation: all logged.
    const wrongFarm = await c.connect(other);
    wrongFarm.send({ type: 'hello', farm: 'farm-b', host: 'rdsh-2', stream: 's' });
    expect((await wrongFarm.next<ErrorFrame>('error')).code).toBe('forbidden');
    const badFrame = await c.connect(other);
    badFrame.send('not json');
    expect((await badFrame.next<ErrorFrame>('error')).code).toBe('bad_frame');
    await expect(TestAgent.connect(c.proc.url, `${token}x`)).rejects.toBeInstanceOf(UpgradeRefused);
    c.reload((farms) =>
      farms.map((farm) => (farm.id === 'farm-a' ? { ...farm, agentTokensSha256: [sha256(other)] } : farm)),
    );
    expect((await agent.next<ErrorFrame>('error')).code).toBe('forbidden');
    await expect.poll(() => c.proc.output.join(''), { timeout: 10_000 }).toContain('configuration reloaded');

    const output = c.proc.output.join('');
    expect(output).toContain('agent connected');
    // A connection's lines carry its fields (made when a line is logged, not kept per connection).
    const lines = output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const connected = lines.find((line) => line.msg === 'agent connected');
    expect(connected).toMatchObject({
      farm: 'farm-a',
      host: 'rdsh-1',
      stream: expect.any(String),
      conn: expect.any(String),
    });
    const closing = lines.filter((line) => line.msg === 'closing agent connection' && line.conn === connected!.conn);
    expect(closing).toEqual([expect.objectContaining({ farm: 'farm-a', host: 'rdsh-1', code: 'forbidden' })]);
    const beforeHello = lines.find((line) => line.msg === 'closing agent connection' && line.code === 'bad_frame');
    expect(beforeHello).toMatchObject({ conn: expect.any(String) });
    expect(beforeHello).not.toHaveProperty('host');
    expect(output).not.toContain(token);
    expect(output).not.toContain(other);
    expect(output).not.toContain(apiToken);
  });
});
