/**
 * The collector against hostile or careless peers, on loopback: the real collector bin and a
 * private Redis. For each attack, the assertion that the collector stays within a memory bound
 * and keeps acking a well-behaved agent, or that the peer gets a clear refusal and nothing
 * breaks for anyone else. Every attack is bounded in count and time.
 */
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { WebSocket } from 'ws';
import type { ErrorFrame } from '@rasmon/protocol';
import { RedisServer } from './support/redis-server.js';
import { useRedis } from './support/use-redis.js';
import { COLLECTOR_BIN, CollectorProcess, rawConfig, sha256 } from './support/collector-harness.js';
import { TestAgent, session } from './support/agent-client.js';
import { Scrape, parseMetrics } from './support/prometheus-text.js';
import { BIG_FRAME_BYTES } from '../collector/dist/ingest/frame-parse-thread.js';

const MiB = 1024 * 1024;
const run = promisify(execFile);

const redis = useRedis();

async function collector(
  farms: Parameters<typeof rawConfig>[1],
  extra: Record<string, unknown> = {},
  options: Parameters<typeof CollectorProcess.start>[1] = {},
) {
  const proc = await CollectorProcess.start(rawConfig(redis.url, farms, extra), options);
  onTestFinished(() => proc.stop());
  return proc;
}

async function agent(url: string, token: string, farm: string, host: string): Promise<TestAgent> {
  const a = await TestAgent.connect(url, token);
  onTestFinished(() => a.socket.terminate());
  await a.hello(farm, host);
  return a;
}

async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const scrape = await Scrape.from(url);
  return scrape.all(name, labels).reduce((sum, sample) => sum + sample.value, 0);
}

/** A raw TCP connection that sends `text` and never reads (its receive buffer kept small). */
function stalledClient(port: number, text: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' }, () => {
      socket.pause();
      socket.write(text);
      resolve(socket);
    });
    socket.on('error', () => undefined);
    socket.once('error', reject);
  });
}

/** A well-behaved agent's frame is still acked: the collector keeps serving agents under attack. */
async function stillAcks(a: TestAgent, seq: number): Promise<void> {
  const acked = a.snapshot(seq, [session(`s${seq}`, 'corp\\calm')]);
  const ack = await vi.waitFor(() => acked, { timeout: 15_000 });
  expect(ack.seq).toBe(seq);
}

describe('one farm against the others', () => {
  it("a farm whose connections together flood the collector waits for its own budget; another farm's frames are acked meanwhile and it is never held back", async () => {
    // Quotas raised out of the way: this test is about the budgets (test/farm-quotas.test.ts has the quotas).
    // Budgets low enough that the flood meets both at once. A farm may take a tenth of its script
    // budget at once: 10 ms here, room for the calm farm's one-session scripts even when a busy
    // machine stretches them (with 20 ms a second, 2 ms at once, one stretched script throttled it).
    const c = await collector(
      [
        { id: 'farm-flood', seats: 10, maxSessions: 100_000, maxNewUsersPerMinute: 100_000 },
        { id: 'farm-calm', seats: 10 },
      ],
      { limits: { bytesPerSecondPerFarm: 262_144, applyMillisecondsPerSecondPerFarm: 100 } },
    );
    // Eight hosts of one farm cycling 2,000-session snapshots (each within the per-connection limits).
    const flooders = await Promise.all(
      Array.from({ length: 8 }, (_, i) => agent(c.url, 'token-farm-flood', 'farm-flood', `rdsh-f${i}`)),
    );
    const sessions = (round: number) =>
      Array.from({ length: 2000 }, (_, i) => session(`s${i}`, `corp\\made-up-${round % 2}-${i}`));
    let flooding = true;
    const floods = flooders.map(async (a) => {
      for (let seq = 1; flooding && seq < 1000; seq += 1) {
        a.send({ type: 'snapshot', seq, sessions: sessions(seq) });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    });
    const calm = await agent(c.url, 'token-farm-calm', 'farm-calm', 'rdsh-c1');
    try {
      await expect
        .poll(() => metric(c.url, 'rasmon_collector_farm_throttled_total', { farm: 'farm-flood' }), {
          timeout: 20_000,
        })
        .toBeGreaterThan(0);
      for (let seq = 1; seq <= 5; seq += 1) await stillAcks(calm, seq);
    } finally {
      flooding = false;
      await Promise.all(floods);
    }
    expect(await metric(c.url, 'rasmon_collector_farm_throttled_total', { farm: 'farm-calm' })).toBe(0);
  });
});

describe('bounded memory', () => {
  it('scrapers that never read their /metrics replies hold neither memory nor the agents up', async () => {
    // 800 farms make a /metrics body of about 700 KB; 800 stalled scrapes of it would take at least
    // 560 MiB held one copy per socket. What the collector grows by otherwise does not depend on the
    // number of scrapers (150-220 MiB with 400 or 800 of them on a 2-core machine: its renders of
    // 800 farms and the heaps of its threads, before they collect), so the bound sits between.
    const farms = Array.from({ length: 800 }, (_, i) => ({ id: `farm-${i}`, seats: 10 }));
    const c = await collector(farms, { limits: { httpTimeoutSeconds: 5 } });
    // The first render of 800 farms may outlast the 5 s response deadline on a machine busy with
    // other work (the socket is then cut with no answer): asked until one whole body comes back.
    const body = await vi.waitFor(async () => (await fetch(`${c.url}/metrics`)).text(), {
      timeout: 30_000,
      interval: 500,
    });
    expect(body.length).toBeGreaterThan(500_000);
    const good = await agent(c.url, 'token-farm-0', 'farm-0', 'rdsh-good');
    await stillAcks(good, 1);
    const before = c.rssBytes();
    const sockets: Socket[] = [];
    for (let i = 0; i < 800; i += 1)
      sockets.push(await stalledClient(c.port, 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'));
    onTestFinished(() => sockets.forEach((socket) => socket.destroy()));
    let peak = 0;
    for (let i = 0; i < 8; i += 1) {
      await sleep(250);
      peak = Math.max(peak, c.rssBytes() - before);
    }
    await stillAcks(good, 2);
    // Readiness answers while the scrapes stall, and says ready. Its PING and write have a 1 s
    // deadline: on a machine busy with other work (the suite's other files, these 800 farms closing
    // their day at midnight) one answer may be a 503, so it is asked until it is ready.
    await vi.waitFor(async () => expect(await raw(c.port, 'GET', '/readyz')).toBe(200), {
      timeout: 15_000,
      interval: 500,
    });
    peak = Math.max(peak, c.rssBytes() - before);
    expect(peak, 'RSS growth under 800 stalled scrapes').toBeLessThan(350 * MiB);
    // Past the write deadline the stalled sockets are cut off: once the peers read, each finds its end.
    await sleep(5000);
    const closed = sockets.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
    for (const socket of sockets) socket.resume();
    await vi.waitFor(() => Promise.all(closed), { timeout: 15_000 });
  });

  it('an agent that sends bad frames and never reads its acks is dropped, within a memory bound', async () => {
    const c = await collector(
      [
        { id: 'farm-a', seats: 10 },
        { id: 'farm-b', seats: 10 },
      ],
      { heartbeatSeconds: 2 },
    );
    const good = await agent(c.url, 'token-farm-b', 'farm-b', 'rdsh-good');
    await stillAcks(good, 1);
    // A big frame first, so the thread that parses big frames (about 20 MiB, once, whoever sends the
    // first) is running before the measure starts: what is measured is what the peer makes it hold.
    const warm = Array.from({ length: 300 }, (_, i) => session(`w${i}`, `corp\\warm-${i}`));
    expect(JSON.stringify({ type: 'snapshot', seq: 2, sessions: warm }).length).toBeGreaterThan(BIG_FRAME_BYTES);
    expect((await good.snapshot(2, warm)).seq).toBe(2);
    const hostile = await agent(c.url, 'token-farm-a', 'farm-a', 'rdsh-hostile');
    hostile.socket.pause();
    const before = c.rssBytes();
    // 16 KB frames of a thousand invalid items, as fast as the socket takes them, until the
    // collector drops the peer (at most 20 s).
    const bad = JSON.stringify({
      type: 'events',
      events: Array.from({ length: 1000 }, (_, i) => ({ seq: i + 1, at: -1, op: 'end', id: 'x' })),
    });
    let peak = 0;
    let sent = 0;
    let dropped = false;
    let checkedAt = Date.now();
    const until = Date.now() + 20_000;
    while (!dropped && Date.now() < until) {
      if (hostile.socket.readyState !== WebSocket.OPEN) {
        dropped = true;
        break;
      }
      if (hostile.socket.bufferedAmount < 4 * MiB) {
        for (let i = 0; i < 20; i += 1)
          hostile.socket.send(bad.replace(/"seq":(\d+)/g, (_m, n: string) => `"seq":${Number(n) + sent * 1000}`));
        sent += 20;
      }
      await sleep(20);
      peak = Math.max(peak, c.rssBytes() - before);
      if (Date.now() - checkedAt > 500) {
        checkedAt = Date.now();
        dropped = (await metric(c.url, 'rasmon_collector_agents_connected')) === 1;
      }
    }
    // Dropped while it was still sending: not reading is what got it dropped, not going quiet.
    expect(dropped, 'the peer that does not read is dropped').toBe(true);
    await expect.poll(() => metric(c.url, 'rasmon_collector_agents_connected'), { timeout: 10_000 }).toBe(1);
    await stillAcks(good, 3);
    expect(peak, 'RSS growth while a peer does not read').toBeLessThan(120 * MiB);
    // Not reading, it answers no ping either: whichever deadline passes first drops it, once, and
    // the counter says which (the kernel's socket buffers decide how soon the acks back up).
    const notReading = await metric(c.url, 'rasmon_collector_agents_dropped_total', { reason: 'not_reading' });
    const silent = await metric(c.url, 'rasmon_collector_agents_dropped_total', { reason: 'silent' });
    expect(notReading + silent).toBe(1);
    expect(c.output.join('')).toContain(
      notReading === 1 ? 'agent does not read what the collector sends' : 'agent silent for two heartbeats',
    );
  });
});

describe('bounded sockets', () => {
  it('a refused upgrade is answered and its socket closed by the collector, not held open by the peer', async () => {
    const c = await collector([{ id: 'farm-a', seats: 10 }]);
    const sockets = await Promise.all(
      Array.from({ length: 100 }, () =>
        stalledClient(
          c.port,
          'GET /v1/agent HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: rasmon.v1\r\nAuthorization: Bearer wrong\r\n\r\n',
        ),
      ),
    );
    onTestFinished(() => sockets.forEach((socket) => socket.destroy()));
    // The peers never end their side; the collector destroys the sockets anyway.
    const closed = sockets.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
    for (const socket of sockets) socket.resume();
    await vi.waitFor(() => Promise.all(closed), { timeout: 10_000 });
    expect(await metric(c.url, 'rasmon_collector_upgrades_rejected_total', { reason: 'unauthorized' })).toBe(100);
    // Logged with the address, but not once per refusal.
    const lines = c.output
      .join('')
      .split('\n')
      .filter((line) => line.includes('refused an agent upgrade') || line.includes('refused agent upgrades'));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(3);
    expect(lines[0]).toContain('127.0.0.1');
  });

  it('upgrades over the per-address rate get 429 before any token is checked', async () => {
    const c = await collector([{ id: 'farm-a', seats: 10 }], {
      limits: { upgradesPerSecondPerAddress: 5, upgradeBurstPerAddress: 10 },
    });
    const statuses = await Promise.all(
      Array.from({ length: 40 }, async () => {
        try {
          const a = await TestAgent.connect(c.url, 'wrong');
          a.socket.terminate();
          return 101;
        } catch (err) {
          return (err as { status?: number }).status ?? 0;
        }
      }),
    );
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(25);
    expect(statuses.filter((status) => status === 401).length).toBeLessThanOrEqual(15);
    expect(
      await metric(c.url, 'rasmon_collector_upgrades_rejected_total', { reason: 'rate_limited' }),
    ).toBeGreaterThanOrEqual(25);
  });

  it("behind a trusted load balancer the per-address limit counts X-Forwarded-For's agents; an untrusted peer's header counts for nothing", async () => {
    /** Upgrade statuses of `count` upgrades with a wrong token, each forwarded for `forwarded(i)`. */
    const statuses = (url: string, count: number, forwarded: (i: number) => string) =>
      Promise.all(
        Array.from(
          { length: count },
          (_, i) =>
            new Promise<number>((resolve) => {
              const socket = new WebSocket(url.replace(/^http/, 'ws') + '/v1/agent', ['rasmon.v1'], {
                headers: { Authorization: 'Bearer wrong', 'X-Forwarded-For': forwarded(i) },
              });
              socket.once('unexpected-response', (_req, res) => {
                resolve(res.statusCode ?? 0);
                res.resume();
                socket.terminate();
              });
              socket.once('open', () => {
                resolve(101);
                socket.terminate();
              });
              socket.once('error', () => resolve(0));
            }),
        ),
      );
    const limits = { upgradesPerSecondPerAddress: 5, upgradeBurstPerAddress: 10 };
    const behind = await collector([{ id: 'farm-a', seats: 10 }], {
      limits,
      http: { trustedProxies: ['127.0.0.1/32', '10.9.0.0/16'] },
    });
    // 40 agents behind the balancer (and a second, trusted hop): none waits for another's limit.
    const distinct = await statuses(behind.url, 40, (i) => `192.0.2.${i + 1}, 10.9.0.7`);
    expect(distinct.filter((status) => status === 429)).toEqual([]);
    // One agent reconnecting in a loop through it is still one address.
    const same = await statuses(behind.url, 40, () => '192.0.2.200');
    expect(same.filter((status) => status === 429).length).toBeGreaterThanOrEqual(25);

    const direct = await collector([{ id: 'farm-a', seats: 10 }], { limits });
    const spoofed = await statuses(direct.url, 40, (i) => `192.0.2.${i + 1}`);
    expect(spoofed.filter((status) => status === 429).length).toBeGreaterThanOrEqual(25);
  });

  it('agents beyond the connection cap get 503 while /readyz and /metrics still answer', async () => {
    const c = await collector([{ id: 'farm-a', seats: 10 }], {
      limits: { maxConnections: 300, upgradeBurstPerAddress: 1000 },
    });
    // 300 less the 256 kept for HTTP: 44 agents.
    const agents: TestAgent[] = [];
    for (let i = 0; i < 44; i += 1) agents.push(await TestAgent.connect(c.url, 'token-farm-a'));
    onTestFinished(() => agents.forEach((a) => a.socket.terminate()));
    await expect(TestAgent.connect(c.url, 'token-farm-a')).rejects.toMatchObject({ status: 503 });
    expect((await fetch(`${c.url}/readyz`)).status).toBe(200);
    expect(await metric(c.url, 'rasmon_collector_upgrades_rejected_total', { reason: 'too_many_connections' })).toBe(1);
  });
});

describe('honest readiness', () => {
  it('a frozen Redis makes /readyz 503 within its probe timeout, and ready again when it resumes', async () => {
    const own = await RedisServer.start();
    onTestFinished(() => own.stop());
    const proc = await CollectorProcess.start(rawConfig(own.url, [{ id: 'farm-a', seats: 10 }]));
    onTestFinished(() => proc.stop());
    own.signal('SIGSTOP');
    try {
      const readyz = fetch(`${proc.url}/readyz`);
      const res = await vi.waitFor(() => readyz, { timeout: 15_000 });
      expect(res.status).toBe(503);
      expect(await res.text()).toMatch(/redis/);
      // The API does not hang either: it fails within the command timeout.
      const farms = fetch(`${proc.url}/api/v1/farms`);
      const api = await vi.waitFor(() => farms, { timeout: 15_000 });
      expect(api.status).toBe(503);
    } finally {
      own.signal('SIGCONT');
    }
    await expect.poll(async () => (await fetch(`${proc.url}/readyz`)).status, { timeout: 15_000 }).toBe(200);
  });

  /** redis_up and each reason of redis_refusing_writes, as one scrape shows them. */
  async function redisSeries(url: string): Promise<Record<string, number | undefined>> {
    const scrape = await Scrape.from(url);
    const series: Record<string, number | undefined> = { up: scrape.value('rasmon_collector_redis_up') };
    for (const reason of ['oom', 'readonly', 'misconf', 'noreplicas']) {
      series[reason] = scrape.value('rasmon_collector_redis_refusing_writes', { reason });
    }
    return series;
  }
  const healthy = { up: 1, oom: 0, readonly: 0, misconf: 0, noreplicas: 0 };

  it('a Redis that refuses writes (maxmemory) is not ready, redis_up is 0 and refusing_writes says oom', async () => {
    const own = await RedisServer.start();
    onTestFinished(() => own.stop());
    const proc = await CollectorProcess.start(rawConfig(own.url, [{ id: 'farm-a', seats: 10 }]));
    onTestFinished(() => proc.stop());
    await expect.poll(() => redisSeries(proc.url), { timeout: 10_000 }).toEqual(healthy);
    const admin = own.client();
    onTestFinished(async () => void (await admin.quit()));
    await admin.config('SET', 'maxmemory', '1');
    try {
      const res = await fetch(`${proc.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.text()).toContain('refuses writes: OOM');
      await expect.poll(() => redisSeries(proc.url), { timeout: 10_000 }).toEqual({ ...healthy, up: 0, oom: 1 });
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    await expect.poll(async () => (await fetch(`${proc.url}/readyz`)).status, { timeout: 10_000 }).toBe(200);
    await expect.poll(() => redisSeries(proc.url), { timeout: 10_000 }).toEqual(healthy);
  });

  it('a farm filling Redis to its maxmemory: the pressure is shown first, then the frames Redis refuses make it not ready and say oom', async () => {
    const own = await RedisServer.start();
    onTestFinished(() => own.stop());
    // Quotas raised out of the way: this test is about what Redis refuses.
    const proc = await CollectorProcess.start(
      rawConfig(own.url, [{ id: 'farm-a', seats: 10, maxSessions: 100_000, maxNewUsersPerMinute: 100_000 }]),
    );
    onTestFinished(() => proc.stop());
    await expect.poll(() => redisSeries(proc.url), { timeout: 10_000 }).toEqual(healthy);
    const admin = own.client();
    onTestFinished(async () => void (await admin.quit()));
    const used = Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))![1]);
    // Room for a few hundred sessions, not for the flood below; the readiness write still fits.
    await admin.config('SET', 'maxmemory', String(used + 400_000));
    try {
      const ratio = async () => (await Scrape.from(proc.url)).value('rasmon_collector_redis_memory_used_ratio') ?? 0;
      await expect.poll(ratio, { timeout: 15_000 }).toBeGreaterThan(0.5);
      const before = await ratio();
      const flooding = await agent(proc.url, 'token-farm-a', 'farm-a', 'rdsh-flood');
      const sessions = Array.from({ length: 2000 }, (_, i) =>
        session(`s${i}`, `corp\\made-up-user-${i}`, { client: { name: 'x'.repeat(200) } }),
      );
      let seq = 1;
      const closed = flooding.closed;
      for (; seq < 40; seq += 1) {
        const acked = await Promise.race([flooding.snapshot(seq, sessions).then(() => true), closed.then(() => false)]);
        if (!acked) break;
      }
      expect((await closed).code).toBe(1013);
      const series = await redisSeries(proc.url);
      expect(series.oom).toBe(1);
      const res = await fetch(`${proc.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.text()).toMatch(/OOM/);
      // The flood's first snapshot went in: the pressure it made is shown.
      await expect.poll(ratio, { timeout: 15_000 }).toBeGreaterThan(before);
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    await expect.poll(async () => (await fetch(`${proc.url}/readyz`)).status, { timeout: 20_000 }).toBe(200);
  });

  it('a Redis turned into a replica (READONLY) is not ready and refusing_writes says readonly; a Redis gone says none', async () => {
    const primary = await RedisServer.start();
    onTestFinished(() => primary.stop());
    const own = await RedisServer.start();
    onTestFinished(() => own.stop());
    const proc = await CollectorProcess.start(rawConfig(own.url, [{ id: 'farm-a', seats: 10 }]));
    onTestFinished(() => proc.stop());
    await expect.poll(() => redisSeries(proc.url), { timeout: 10_000 }).toEqual(healthy);
    const admin = own.client();
    onTestFinished(() => admin.disconnect());
    await admin.replicaof('127.0.0.1', primary.port);
    try {
      await vi.waitFor(
        async () => {
          const res = await fetch(`${proc.url}/readyz`);
          expect(res.status).toBe(503);
          expect(await res.text()).toContain('refuses writes: READONLY');
        },
        { timeout: 10_000 },
      );
      await expect.poll(() => redisSeries(proc.url), { timeout: 10_000 }).toEqual({ ...healthy, up: 0, readonly: 1 });
    } finally {
      await admin.replicaof('NO', 'ONE');
    }
    await expect.poll(async () => (await fetch(`${proc.url}/readyz`)).status, { timeout: 10_000 }).toBe(200);
    await expect.poll(() => redisSeries(proc.url), { timeout: 10_000 }).toEqual(healthy);
    // Unreachable is not a refusal: redis_up 0 with every reason 0 (what RasCollectorRedisDown reads).
    admin.disconnect();
    await own.kill();
    await expect.poll(() => redisSeries(proc.url), { timeout: 10_000 }).toEqual({ ...healthy, up: 0 });
  });
});

/** A raw HTTP request, for methods and targets fetch will not send. */
function raw(port: number, method: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('input edges', () => {
  it('refuses malformed paths and methods a read endpoint does not take', async () => {
    const c = await collector([{ id: 'farm-a', seats: 10 }]);
    expect(await raw(c.port, 'GET', '//evil.example/api/v1/farms')).toBe(400);
    expect(await raw(c.port, 'GET', '/api/v1/farms/%ff')).toBe(400);
    for (const method of ['POST', 'PUT', 'DELETE', 'TRACE']) {
      for (const path of ['/metrics', '/healthz', '/readyz'])
        expect(await raw(c.port, method, path), `${method} ${path}`).toBe(405);
    }
    expect(await raw(c.port, 'HEAD', '/metrics')).toBe(200);
  });

  it('a session that starts after the last valid date is rejected, and the farm API keeps answering', async () => {
    const c = await collector([{ id: 'farm-a', seats: 10 }]);
    const a = await agent(c.url, 'token-farm-a', 'farm-a', 'rdsh-1');
    const ack = await a.snapshot(1, [
      session('s1', 'corp\\alice', { since: 9007199254740991 }),
      session('s2', 'corp\\bob'),
    ]);
    expect(ack.rejected).toHaveLength(1);
    const res = await fetch(`${c.url}/api/v1/farms/farm-a`);
    expect(res.status).toBe(200);
  });

  it('a host named constructor exports its own values, not Object.prototype', async () => {
    const c = await collector([{ id: 'farm-a', seats: 10 }]);
    const a = await agent(c.url, 'token-farm-a', 'farm-a', 'constructor');
    await a.snapshot(1, [session('s1', 'corp\\alice')]);
    const text = await (await fetch(`${c.url}/metrics`)).text();
    expect(text).not.toContain('function');
    expect(new Scrape(parseMetrics(text)).value('ras_host_connections', { farm: 'farm-a', host: 'constructor' })).toBe(
      1,
    );
  });

  it('a depth bomb is a bad frame, not a Redis failure', async () => {
    const c = await collector([{ id: 'farm-a', seats: 10 }]);
    const a = await agent(c.url, 'token-farm-a', 'farm-a', 'rdsh-1');
    a.send(`{"type":${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
    const error = await a.next('error');
    expect(error).toMatchObject({ code: 'bad_frame' });
    expect((await a.closed).code).toBe(1007);
    expect(await metric(c.url, 'rasmon_collector_redis_up')).toBe(1);
  });

  it('control characters in names are rejected, so they reach neither /metrics nor the API', async () => {
    const c = await collector([{ id: 'farm-a', seats: 10 }]);
    const a = await agent(c.url, 'token-farm-a', 'farm-a', 'rdsh-1');
    const ack = await a.snapshot(1, [
      session('s1', 'corp\\al\rice'),
      session('s\u001b[2J', 'corp\\bob'),
      session('s3', 'corp\\carol'),
    ]);
    expect(ack.rejected).toHaveLength(2);
    const detail = await (await fetch(`${c.url}/api/v1/farms/farm-a`)).text();
    expect(detail).not.toMatch(/\\r|\\u001b/);
  });
});

describe('logs', () => {
  it('a refused frame is logged without its arguments; a failed Redis login without the password', async () => {
    const own = await RedisServer.start();
    onTestFinished(() => own.stop());
    const proc = await CollectorProcess.start(rawConfig(own.url, [{ id: 'farm-a', seats: 10 }]), { logLevel: 'debug' });
    onTestFinished(() => proc.stop());
    const a = await agent(proc.url, 'token-farm-a', 'farm-a', 'rdsh-1');
    const admin = own.client();
    onTestFinished(async () => void (await admin.quit()));
    await admin.config('SET', 'maxmemory', '1');
    a.send({
      type: 'snapshot',
      seq: 1,
      at: Date.now(),
      sessions: [session('s1', 'corp\\secret-alice', { client: { address: '203.0.113.77' } })],
    });
    expect((await a.closed).code).toBe(1013);
    await admin.config('SET', 'maxmemory', '0');
    await expect.poll(() => proc.output.join(''), { timeout: 10_000 }).toContain('frame could not be applied');
    const log = proc.output.join('');
    expect(log).not.toContain('secret-alice');
    expect(log).not.toContain('203.0.113.77');
    for (const line of log.split('\n')) expect(line.length).toBeLessThan(5000);

    // Now a password Redis does not take, at debug level.
    await admin.config('SET', 'requirepass', 'the-real-one');
    const wrong = await CollectorProcess.start(
      rawConfig(`redis://:hunter2-wrong-password@127.0.0.1:${own.port}`, [{ id: 'farm-a', seats: 10 }]),
      { logLevel: 'debug', waitReady: false },
    );
    onTestFinished(() => wrong.stop());
    await expect.poll(() => wrong.output.join(''), { timeout: 10_000 }).toMatch(/WRONGPASS|invalid password|redis/);
    await sleep(500);
    expect(wrong.output.join('')).not.toContain('hunter2-wrong-password');
    await admin.config('SET', 'requirepass', '');
  });
});

describe('host identity', () => {
  it('a token bound to host names cannot take over another host of its farm; each refusal is counted, and logged rate-limited without addresses', async () => {
    const c = await collector([
      {
        id: 'farm-a',
        seats: 10,
        agentTokensSha256: [
          { sha256: sha256('token-rdsh-1'), hosts: ['rdsh-1'] },
          { sha256: sha256('token-leaked'), hosts: ['rdsh-0?'] },
        ],
      },
    ]);
    const good = await agent(c.url, 'token-rdsh-1', 'farm-a', 'rdsh-1');
    await stillAcks(good, 1);
    // The leaked token may claim its own hosts, in any case...
    const own = await agent(c.url, 'token-leaked', 'farm-a', 'RDSH-05');
    expect((await own.snapshot(1, [session('1', 'corp\\own')])).seq).toBe(1);
    // ...but neither the good agent's host nor made-up ones: 20 hellos, 20 refusals.
    const attempts = ['rdsh-1', 'RDSH-1', ...Array.from({ length: 18 }, (_, i) => `fake-${i}`)];
    for (const host of attempts) {
      const hostile = await TestAgent.connect(c.url, 'token-leaked');
      onTestFinished(() => hostile.socket.terminate());
      hostile.send({ type: 'hello', farm: 'farm-a', host, stream: 'stream-x' });
      const error = await hostile.next<ErrorFrame>('error');
      expect(error.code).toBe('forbidden');
      expect(error.message).toBe(`this token may not claim host ${host}`);
      expect((await hostile.closed).code).toBe(1008);
    }
    expect(await metric(c.url, 'rasmon_collector_upgrades_rejected_total', { reason: 'token_hosts' })).toBe(
      attempts.length,
    );
    // The good agent kept its host: not superseded, still acked, and the fakes hold no host.
    await stillAcks(good, 2);
    const api = (await (await fetch(`${c.url}/api/v1/farms/farm-a`)).json()) as { hosts: Array<{ host: string }> };
    expect(api.hosts.map((host) => host.host).sort()).toEqual(['rdsh-05', 'rdsh-1']);
    // One line for the first refusal (the rest wait for the 10 s summary), naming the farm, not the peer.
    const lines = c.output.join('').split('\n');
    const refusals = lines.filter((line) => line.includes('refused an agent hello'));
    expect(refusals).toHaveLength(1);
    expect(JSON.parse(refusals[0]!)).toMatchObject({
      reason: 'token_hosts',
      farm: 'farm-a',
      status: 'forbidden',
      detail: 'this token may not claim host rdsh-1',
    });
    expect(refusals[0]).not.toContain('127.0.0.1');
    expect(lines.filter((line) => line.includes('may not claim') && !line.includes('refused an agent hello'))).toEqual(
      [],
    );
  });
});

describe('host caps', () => {
  /** `rasmon-collector forget-host`, as an administrator runs it. */
  function forgetHost(configPath: string, farm: string, host: string): Promise<unknown> {
    return run(
      process.execPath,
      [COLLECTOR_BIN, 'forget-host', '--config', configPath, '--farm', farm, '--host', host],
      {
        env: { ...process.env, RASMON_LOG_LEVEL: 'warn' },
      },
    );
  }

  it('retired hosts count toward maxKnownHosts: made-up hosts cannot grow the farm without bound, and forget-host frees them', async () => {
    const c = await collector([{ id: 'farm-a', seats: 10, maxHosts: 2, maxKnownHosts: 4 }], {
      heartbeatSeconds: 1,
      hostRetireSeconds: 1,
    });
    const retired = async (host: string) =>
      (await Scrape.from(c.url)).value('ras_host_retired', { farm: 'farm-a', host });
    // Hosts that come and go: each pair is retired, which frees maxHosts but not maxKnownHosts.
    for (const pair of [
      ['fake-1', 'fake-2'],
      ['fake-3', 'fake-4'],
    ]) {
      for (const host of pair) {
        const a = await agent(c.url, 'token-farm-a', 'farm-a', host);
        await a.close();
      }
      await vi.waitFor(
        async () => {
          for (const host of pair) expect(await retired(host)).toBe(1);
        },
        { timeout: 15_000 },
      );
    }
    const refusals = await metric(c.url, 'rasmon_collector_upgrades_rejected_total', { reason: 'max_hosts' });
    const real = await TestAgent.connect(c.url, 'token-farm-a');
    onTestFinished(() => real.socket.terminate());
    real.send({ type: 'hello', farm: 'farm-a', host: 'rdsh-new', stream: 'stream-1' });
    const error = await real.next<ErrorFrame>('error');
    expect(error).toEqual({
      type: 'error',
      code: 'forbidden',
      message: 'farm farm-a already knows its maximum of 4 hosts, retired ones included (forget-host frees them)',
    });
    expect((await real.closed).code).toBe(1008);
    expect(await metric(c.url, 'rasmon_collector_upgrades_rejected_total', { reason: 'max_hosts' })).toBe(refusals + 1);
    // A known host still comes back (it grows nothing)...
    const back = await agent(c.url, 'token-farm-a', 'farm-a', 'fake-1');
    await back.close();
    // ...and once an administrator forgets a made-up host, the real one gets in.
    await forgetHost(c.configPath, 'farm-a', 'fake-2');
    const admitted = await agent(c.url, 'token-farm-a', 'farm-a', 'rdsh-new');
    expect((await admitted.snapshot(1, [session('1', 'corp\\new')])).seq).toBe(1);
  });
});

describe('fairness', () => {
  it('one connection flooding frames does not hold up another farm: it waits on its own rate', async () => {
    const c = await collector(
      [
        { id: 'farm-a', seats: 10 },
        { id: 'farm-b', seats: 10 },
      ],
      { limits: { framesPerSecondPerConnection: 20 } },
    );
    const hog = await agent(c.url, 'token-farm-a', 'farm-a', 'rdsh-hog');
    const good = await agent(c.url, 'token-farm-b', 'farm-b', 'rdsh-good');
    // 200 frames at 20 a second take the hog ten seconds; the other farm's frame goes meanwhile.
    for (let seq = 1; seq <= 200; seq += 1)
      hog.send({ type: 'snapshot', seq, at: Date.now(), sessions: [session(`h${seq}`, 'corp\\hog')] });
    await stillAcks(good, 1);
    const hogAcks = hog.received.filter((frame) => frame.type === 'ack').length;
    expect(hogAcks).toBeLessThan(200);
  });
});
