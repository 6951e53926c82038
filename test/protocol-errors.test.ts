/**
 * Wire protocol v1 when the agent gets it wrong (docs/design.md §3): refused upgrades, every error code
 * with its close code, rejected items, duplicates, seq gaps, ownership of a host across
 * collectors, and Redis going away. Each refusal must leave the farm exactly as it was.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  MAX_COLLECTOR_FRAME_BYTES,
  MAX_LISTED_REJECTIONS,
  MAX_REJECTION_ID_CHARS,
  type AckFrame,
  type ErrorFrame,
  type WelcomeFrame,
} from '@rasmon/protocol';
import { RedisServer } from './support/redis-server.js';
import { useRedis } from './support/use-redis.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, UpgradeRefused, end, session, upsert } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';

const TOKEN_A = 'token-farm-a';
const TOKEN_B = 'token-farm-b';
const LIMITS = { maxFrameBytes: 4096, maxEvents: 3, maxSessions: 3 };

const redis = useRedis();

/** Closes an agent when the test that opened it finishes, so no test leaks a host owner. */
function closeWithTest(agent: TestAgent): void {
  onTestFinished(async () => {
    // A collector that never completes the closing handshake must not hang the suite.
    if (!(await Promise.race([agent.close(), sleep(1000, undefined)]))) agent.socket.terminate();
  });
}

async function connect(url: string, token = TOKEN_A, track = true): Promise<TestAgent> {
  const agent = await TestAgent.connect(url, token);
  if (track) closeWithTest(agent);
  return agent;
}

/**
 * Connects and says hello; the welcome tells the next seq to use. `keep` leaves the agent open
 * across tests (a suite's fixture), until its collector stops.
 */
async function helloAgent(
  url: string,
  host: string,
  options: { farm?: string; token?: string; stream?: string; keep?: boolean } = {},
) {
  const agent = await connect(url, options.token ?? TOKEN_A, !options.keep);
  const welcome = await agent.hello(options.farm ?? 'farm-a', host, options.stream ?? `stream-${host}`);
  return { agent, welcome };
}

/** The sum of a metric's series with these labels (0 when none exists yet). */
async function total(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return (await Scrape.from(url)).all(name, labels).reduce((sum, sample) => sum + sample.value, 0);
}

async function farmDetail(url: string, farm = 'farm-a'): Promise<any> {
  const res = await fetch(`${url}/api/v1/farms/${farm}`);
  expect(res.status).toBe(200);
  return res.json();
}

const FARM_SERIES = [
  'ras_license_users',
  'ras_license_peak_users',
  'ras_license_overuse_admissions_total',
  'ras_host_connections',
  'ras_connections',
  'ras_connections_exempt',
  'ras_farm_last_update_timestamp_seconds',
  'ras_snapshot_corrections_total',
];

/**
 * What a refused frame must not change: the farm's counting series, its hosts and its connections.
 * Host liveness is left out on purpose: a connection closed for an error releases its host's lease.
 */
async function farmState(url: string, farm = 'farm-a') {
  const scrape = await Scrape.from(url);
  const metrics = FARM_SERIES.flatMap((name) =>
    scrape.all(name, { farm }).map((sample) => `${name}${JSON.stringify(sample.labels)} ${sample.value}`),
  ).sort();
  const detail = await farmDetail(url, farm);
  return {
    metrics,
    hosts: detail.hosts.map((host: any) => `${host.host}:${host.connections}`).sort(),
    connections: detail.connections,
  };
}

const connectionIds = async (url: string, host: string): Promise<string[]> =>
  (await farmDetail(url)).connections
    .filter((connection: any) => connection.host === host)
    .map((connection: any) => connection.id)
    .sort();

/** Waits for the error frame and the close that must follow it. */
async function expectError(agent: TestAgent, code: ErrorFrame['code'], close: number, timeoutMs = 2000): Promise<void> {
  expect(await agent.next<ErrorFrame>('error', timeoutMs)).toEqual({
    type: 'error',
    code,
    message: expect.stringMatching(/\S/),
  });
  expect(await closeCode(agent)).toBe(close);
}

/** The close code the agent saw, failing instead of hanging when the collector never closes. */
async function closeCode(agent: TestAgent, timeoutMs = 2000): Promise<number> {
  const closed = await Promise.race([agent.closed, sleep(timeoutMs, undefined)]);
  if (!closed)
    throw new Error(`connection still open after ${timeoutMs} ms; received ${JSON.stringify(agent.received)}`);
  return closed.code;
}

/**
 * Sends a frame that any earlier frame's resync or error would precede; after its ack, everything
 * the collector sent in answer to earlier frames has arrived.
 */
async function barrier(agent: TestAgent, lastSeq: number): Promise<void> {
  const ack = await agent.events([end(lastSeq, 'no-such-session')]);
  expect(ack.seq).toBe(lastSeq);
}

const types = (agent: TestAgent) => agent.received.map((frame) => frame.type);

describe('upgrade refusals', () => {
  let c: InProcessCollector;
  beforeAll(async () => {
    c = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats: 10 }]), { tickMs: 100 });
  });
  afterAll(async () => {
    await c.stop();
  });

  const refusals: Array<{
    name: string;
    token: string | undefined;
    path?: string;
    protocols?: string[];
    status: number;
    reason: string;
  }> = [
    { name: 'a missing token is answered 401', token: undefined, status: 401, reason: 'unauthorized' },
    { name: 'an unknown token is answered 401', token: 'token-nobody', status: 401, reason: 'unauthorized' },
    {
      name: 'a path other than /v1/agent is answered 404',
      token: TOKEN_A,
      path: '/v1/agents',
      status: 404,
      reason: 'not_found',
    },
    {
      name: 'an upgrade without a subprotocol is answered 400',
      token: TOKEN_A,
      protocols: [],
      status: 400,
      reason: 'subprotocol',
    },
    {
      name: 'an upgrade offering only another subprotocol is answered 400',
      token: TOKEN_A,
      protocols: ['rasmon.v2'],
      status: 400,
      reason: 'subprotocol',
    },
  ];

  it.each(refusals)(
    '$name, with no WebSocket, and counted by reason',
    async ({ token, path, protocols, status, reason }) => {
      const before = await total(c.url, 'rasmon_collector_upgrades_rejected_total', { reason });
      const refused = await TestAgent.connect(c.url, token, {
        ...(path ? { path } : {}),
        ...(protocols ? { protocols } : {}),
      }).then(
        (agent) => {
          closeWithTest(agent);
          return undefined;
        },
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(UpgradeRefused);
      expect((refused as UpgradeRefused).status).toBe(status);
      expect(await total(c.url, 'rasmon_collector_upgrades_rejected_total', { reason })).toBe(before + 1);
      expect(await total(c.url, 'rasmon_collector_agents_connected')).toBe(0);
    },
  );

  it('a known token with the rasmon.v1 subprotocol is let in (the refusals above are not blanket)', async () => {
    const before = await total(c.url, 'rasmon_collector_upgrades_rejected_total');
    const { welcome } = await helloAgent(c.url, 'rdsh-1');
    expect(welcome.ack).toBe(0);
    expect(await total(c.url, 'rasmon_collector_upgrades_rejected_total')).toBe(before);
  });
});

describe('malformed frames: bad_frame, close 1007, nothing applied', () => {
  let c: InProcessCollector;
  const valid = () => session(`new-${Math.random().toString(36).slice(2, 8)}`, 'corp\\mallory');
  beforeAll(async () => {
    c = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats: 10 }], { limits: LIMITS }), {
      tickMs: 100,
    });
    const keeper = await helloAgent(c.url, 'rdsh-1', { keep: true });
    await keeper.agent.snapshot(1, [
      session('k1', 'corp\\alice'),
      session('k2', 'corp\\bob', { state: 'disconnected' }),
    ]);
    // The host the bad frames target holds connections too, so a wrongly applied snapshot or end would show.
    const target = await helloAgent(c.url, 'rdsh-2', { keep: true });
    expect(target.welcome.limits).toEqual(LIMITS);
    await target.agent.snapshot(1, [session('t1', 'corp\\carol'), session('t2', 'corp\\dave', { kind: 'app' })]);
    await target.agent.close();
  });
  afterAll(async () => {
    await c.stop();
  });

  /** Each frame would change the farm if the collector took it. */
  const badFrames: Array<{ name: string; frame: (seq: number) => unknown }> = [
    {
      name: 'a frame that is not JSON',
      frame: (seq) => JSON.stringify({ type: 'events', events: [upsert(seq, valid())] }).slice(0, -2),
    },
    {
      name: 'a JSON array instead of an object',
      frame: (seq) => JSON.stringify([{ type: 'events', events: [upsert(seq, valid())] }]),
    },
    { name: 'a JSON string instead of an object', frame: () => JSON.stringify('events') },
    { name: 'JSON null', frame: () => 'null' },
    { name: 'a frame of unknown type', frame: (seq) => ({ type: 'event', events: [upsert(seq, valid())] }) },
    { name: 'a frame without type', frame: (seq) => ({ events: [upsert(seq, valid())] }) },
    {
      name: 'an events frame with an item missing its seq',
      frame: (seq) => {
        const { seq: _omitted, ...unnumbered } = upsert(seq + 1, valid());
        return { type: 'events', events: [upsert(seq, valid()), unnumbered] };
      },
    },
    {
      name: 'an events frame with a seq that is not a positive integer',
      frame: (seq) => ({ type: 'events', events: [upsert(seq, valid()), upsert(0, valid())] }),
    },
    {
      name: 'an events frame with a seq given as a string',
      frame: (seq) => ({ type: 'events', events: [{ ...upsert(seq, valid()), seq: String(seq) }] }),
    },
    {
      name: 'an events frame with an item that is not an object',
      frame: (seq) => ({ type: 'events', events: [upsert(seq, valid()), 42] }),
    },
    { name: 'a snapshot missing its seq', frame: () => ({ type: 'snapshot', at: Date.now(), sessions: [valid()] }) },
    {
      name: 'a snapshot with a fractional seq',
      frame: (seq) => ({ type: 'snapshot', seq: seq + 0.5, at: Date.now(), sessions: [valid()] }),
    },
    { name: 'events that are not a list', frame: (seq) => ({ type: 'events', events: { 0: upsert(seq, valid()) } }) },
    { name: 'an events frame without events', frame: () => ({ type: 'events' }) },
    {
      name: 'sessions that are not a list',
      frame: (seq) => ({ type: 'snapshot', seq, at: Date.now(), sessions: { 0: valid() } }),
    },
    {
      name: 'more events than maxEvents',
      frame: (seq) => ({ type: 'events', events: [0, 1, 2, 3].map((i) => upsert(seq + i, valid())) }),
    },
    {
      name: 'more sessions than maxSessions',
      frame: (seq) => ({ type: 'snapshot', seq, at: Date.now(), sessions: [valid(), valid(), valid(), valid()] }),
    },
    {
      name: 'a binary frame holding a valid events frame',
      frame: (seq) =>
        Buffer.from(JSON.stringify({ type: 'events', events: [upsert(seq, valid()), end(seq + 1, 't1')] })),
    },
  ];

  it.each(badFrames)('$name is a bad_frame: error frame, close 1007, farm unchanged', async ({ frame }) => {
    const { agent, welcome } = await helloAgent(c.url, 'rdsh-2');
    const before = await farmState(c.url);
    const refusedBefore = await total(c.url, 'rasmon_collector_frames_total', { result: 'refused' });
    const payload = frame(welcome.ack + 1);
    if (Buffer.isBuffer(payload)) agent.socket.send(payload, { binary: true });
    else agent.send(payload);
    await expectError(agent, 'bad_frame', 1007);
    expect(agent.received.filter((f) => f.type === 'ack')).toEqual([]);
    expect(await farmState(c.url)).toEqual(before);
    expect(await total(c.url, 'rasmon_collector_frames_total', { result: 'refused' })).toBe(refusedBefore + 1);
  });

  it('a malformed frame before hello is a bad_frame, not hello_required (checked first)', async () => {
    const agent = await connect(c.url);
    const before = await farmState(c.url);
    agent.send({ type: 'events', events: 'none' });
    await expectError(agent, 'bad_frame', 1007);
    expect(await farmState(c.url)).toEqual(before);
  });

  it('a frame over maxFrameBytes closes with 1009 and is not applied', async () => {
    const { agent, welcome } = await helloAgent(c.url, 'rdsh-2');
    const before = await farmState(c.url);
    // Valid but for its size: unknown fields are ignored, so only the limit can refuse it.
    const big = {
      ...upsert(welcome.ack + 1, session('huge', 'corp\\mallory')),
      padding: 'x'.repeat(LIMITS.maxFrameBytes),
    };
    agent.send({ type: 'events', events: [big] });
    expect(await closeCode(agent)).toBe(1009);
    expect(agent.received.filter((f) => f.type === 'ack')).toEqual([]);
    expect(await farmState(c.url)).toEqual(before);
    expect(await connectionIds(c.url, 'rdsh-2')).not.toContain('huge');
  });

  it('frames at exactly maxEvents and maxSessions, under maxFrameBytes, are applied (the limits are not off by one)', async () => {
    const { agent } = await helloAgent(c.url, 'rdsh-3');
    const three = [session('e1', 'corp\\x1'), session('e2', 'corp\\x2'), session('e3', 'corp\\x3')];
    expect(await agent.snapshot(1, three)).toEqual({ type: 'ack', seq: 1 });
    expect(await agent.events([end(2, 'e1'), end(3, 'e2'), upsert(4, session('e4', 'corp\\x4'))])).toEqual({
      type: 'ack',
      seq: 4,
    });
    expect(await connectionIds(c.url, 'rdsh-3')).toEqual(['e3', 'e4']);
  });
});

describe('hello: hello_required, bad_hello, forbidden (close 1008), nothing claimed', () => {
  let c: InProcessCollector;
  beforeAll(async () => {
    c = await InProcessCollector.start(
      rawConfig(redis.url, [
        { id: 'farm-a', seats: 10 },
        { id: 'farm-b', seats: 10, hosts: ['rdsh-*'], maxHosts: 1 },
      ]),
      { tickMs: 100 },
    );
    const keeper = await helloAgent(c.url, 'rdsh-1', { keep: true });
    await keeper.agent.snapshot(1, [session('k1', 'corp\\alice')]);
  });
  afterAll(async () => {
    await c.stop();
  });

  const both = async () => ({ a: await farmState(c.url, 'farm-a'), b: await farmState(c.url, 'farm-b') });
  const helloRefusals = () => total(c.url, 'rasmon_collector_upgrades_rejected_total');

  it.each([
    {
      name: 'a snapshot',
      frame: { type: 'snapshot', seq: 5, at: Date.now(), sessions: [session('h1', 'corp\\mallory')] },
    },
    { name: 'an events frame', frame: { type: 'events', events: [upsert(5, session('h2', 'corp\\mallory'))] } },
  ])('$name before hello gets hello_required and close 1008', async ({ frame }) => {
    const agent = await connect(c.url);
    const before = await both();
    agent.send(frame);
    await expectError(agent, 'hello_required', 1008);
    expect(await both()).toEqual(before);
  });

  it.each([
    { name: 'a host name with a space', hello: { farm: 'farm-a', host: 'rdsh 2', stream: 's' } },
    { name: 'a host name starting with a dash', hello: { farm: 'farm-a', host: '-rdsh2', stream: 's' } },
    { name: 'a host name of 65 characters', hello: { farm: 'farm-a', host: `r${'d'.repeat(64)}`, stream: 's' } },
    { name: 'a missing host', hello: { farm: 'farm-a', stream: 's' } },
    { name: 'a farm name with a slash', hello: { farm: 'farm/a', host: 'rdsh-2', stream: 's' } },
    { name: 'an empty stream', hello: { farm: 'farm-a', host: 'rdsh-2', stream: '' } },
    { name: 'a stream of 65 characters', hello: { farm: 'farm-a', host: 'rdsh-2', stream: 's'.repeat(65) } },
  ])('a hello with $name gets bad_hello and close 1008, and claims nothing', async ({ hello }) => {
    const agent = await connect(c.url);
    const before = await both();
    const refusals = await helloRefusals();
    agent.send({ type: 'hello', ...hello });
    await expectError(agent, 'bad_hello', 1008);
    expect(types(agent)).not.toContain('welcome');
    expect(await both()).toEqual(before);
    expect(await helloRefusals()).toBe(refusals + 1);
  });

  it('a second hello on one connection gets bad_hello and close 1008, and does not claim its host', async () => {
    const { agent } = await helloAgent(c.url, 'rdsh-2');
    const before = await both();
    agent.send({ type: 'hello', farm: 'farm-a', host: 'rdsh-3', stream: 'stream-rdsh-3' });
    await expectError(agent, 'bad_hello', 1008);
    expect(agent.received.filter((f) => f.type === 'welcome')).toHaveLength(1);
    expect(await both()).toEqual(before);
    expect(before.a.hosts.some((host: string) => host.startsWith('rdsh-3:'))).toBe(false);
  });

  it('an invalid hello for a farm of another token is bad_hello, not forbidden (checked first)', async () => {
    const agent = await connect(c.url, TOKEN_A);
    agent.send({ type: 'hello', farm: 'farm-b', host: 'rdsh 1', stream: 's' });
    await expectError(agent, 'bad_hello', 1008);
  });

  it('a token of farm-a used for a hello of farm-b gets forbidden and close 1008', async () => {
    const agent = await connect(c.url, TOKEN_A);
    const before = await both();
    const refusals = await helloRefusals();
    agent.send({ type: 'hello', farm: 'farm-b', host: 'rdsh-1', stream: 's' });
    await expectError(agent, 'forbidden', 1008);
    expect(await both()).toEqual(before);
    expect(before.b.hosts).toEqual([]);
    expect(await helloRefusals()).toBe(refusals + 1);
  });

  it("a host outside the farm's hosts patterns gets forbidden and close 1008", async () => {
    const agent = await connect(c.url, TOKEN_B);
    const before = await both();
    // farm-b has no host yet, so only the pattern can refuse this one (not maxHosts).
    expect(before.b.hosts).toEqual([]);
    agent.send({ type: 'hello', farm: 'farm-b', host: 'web-1', stream: 's' });
    await expectError(agent, 'forbidden', 1008);
    expect(await both()).toEqual(before);
  });

  it('a farm at maxHosts forbids a new host (close 1008) but lets its own host reconnect', async () => {
    const first = await helloAgent(c.url, 'rdsh-1', { farm: 'farm-b', token: TOKEN_B });
    expect(await first.agent.snapshot(1, [session('b1', 'corp\\erin')])).toEqual({ type: 'ack', seq: 1 });
    const before = await both();
    const refusals = await helloRefusals();
    const second = await connect(c.url, TOKEN_B);
    second.send({ type: 'hello', farm: 'farm-b', host: 'rdsh-2', stream: 's' });
    await expectError(second, 'forbidden', 1008);
    expect(await both()).toEqual(before);
    expect(await helloRefusals()).toBe(refusals + 1);
    const again = await helloAgent(c.url, 'rdsh-1', { farm: 'farm-b', token: TOKEN_B });
    expect(again.welcome.ack).toBe(1);
  });

  it('a newer connection for the same host supersedes the older one (close 1008) and keeps the host live', async () => {
    const older = await helloAgent(c.url, 'rdsh-5');
    await older.agent.snapshot(1, [session('s1', 'corp\\frank')]);
    const newer = await helloAgent(c.url, 'rdsh-5');
    expect(newer.welcome.ack).toBe(1);
    await expectError(older.agent, 'superseded', 1008);
    // The older connection's close must not release a host it no longer owns.
    await sleep(100);
    expect((await Scrape.from(c.url)).value('ras_agent_up', { farm: 'farm-a', host: 'rdsh-5' })).toBe(1);
    expect(await newer.agent.events([upsert(2, session('s2', 'corp\\gina'))])).toEqual({ type: 'ack', seq: 2 });
    expect(await connectionIds(c.url, 'rdsh-5')).toEqual(['s1', 's2']);
  });
});

describe('superseded across collectors sharing one Redis', () => {
  let c1: InProcessCollector;
  let c2: InProcessCollector;
  beforeAll(async () => {
    // One config object, so both collectors use the same key prefix.
    const raw = rawConfig(redis.url, [{ id: 'farm-a', seats: 10 }], { heartbeatSeconds: 1 });
    c1 = await InProcessCollector.start(raw, { tickMs: 100 });
    c2 = await InProcessCollector.start(raw, { tickMs: 100 });
  });
  afterAll(async () => {
    await Promise.all([c1.stop(), c2.stop()]);
  });

  it('an idle older connection on another collector is told superseded by its next heartbeat', async () => {
    const older = await helloAgent(c1.url, 'rdsh-1');
    await older.agent.snapshot(1, [session('a1', 'corp\\alice')]);
    const newer = await helloAgent(c2.url, 'rdsh-1');
    expect(newer.welcome.ack).toBe(1);
    // heartbeatSeconds is 1: the renewal that finds another owner comes within about a second.
    expect(await older.agent.next<ErrorFrame>('error', 2500)).toEqual({
      type: 'error',
      code: 'superseded',
      message: expect.stringMatching(/\S/),
    });
    expect(await closeCode(older.agent)).toBe(1008);
    await sleep(100);
    expect((await Scrape.from(c1.url)).value('ras_agent_up', { farm: 'farm-a', host: 'rdsh-1' })).toBe(1);
    expect(await newer.agent.events([upsert(2, session('a2', 'corp\\bob'))])).toEqual({ type: 'ack', seq: 2 });
  });

  it('a frame from the older connection on another collector is not applied', async () => {
    const older = await helloAgent(c1.url, 'rdsh-2');
    await older.agent.snapshot(1, [session('b1', 'corp\\carol')]);
    const newer = await helloAgent(c2.url, 'rdsh-2');
    expect(newer.welcome.ack).toBe(1);
    const before = await farmState(c1.url);
    older.agent.send({ type: 'events', events: [upsert(2, session('stale-write', 'corp\\mallory')), end(3, 'b1')] });
    await expectError(older.agent, 'superseded', 1008);
    expect(older.agent.received.filter((f) => f.type === 'ack' && f.seq > 1)).toEqual([]);
    expect(await farmState(c2.url)).toEqual(before);
    // The newer connection's stream goes on from seq 1: the old frame did not take seq 2 and 3.
    expect(await newer.agent.events([upsert(2, session('b2', 'corp\\dave'))])).toEqual({ type: 'ack', seq: 2 });
    expect(await connectionIds(c2.url, 'rdsh-2')).toEqual(['b1', 'b2']);
  });
});

describe('rejected items, duplicates, gaps and stream identity', () => {
  let c: InProcessCollector;
  beforeAll(async () => {
    c = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats: 10 }]), { tickMs: 100 });
  });
  afterAll(async () => {
    await c.stop();
  });

  it('invalid events are rejected by seq in the ack, the valid ones around them apply, and the stream goes on without resync', async () => {
    const { agent } = await helloAgent(c.url, 'rdsh-rej');
    await agent.snapshot(1, [session('r0', 'corp\\zoe')]);
    const rejectedBefore = await total(c.url, 'rasmon_collector_events_total', { result: 'rejected' });
    const usersBefore = await total(c.url, 'ras_license_users', { farm: 'farm-a' });
    const ack = await agent.events([
      upsert(2, session('r1', 'corp\\alice')),
      { seq: 3, at: Date.now(), op: 'replace', session: session('bad-op', 'corp\\mallory') },
      {
        seq: 4,
        at: Date.now(),
        op: 'upsert',
        session: { ...session('bad-session', 'corp\\mallory'), kind: 'console' },
      },
      { seq: 5, at: -1, op: 'upsert', session: session('bad-at', 'corp\\mallory') },
      { seq: 6, at: Date.now(), op: 'end', id: '' },
      upsert(7, session('r2', 'corp\\bob')),
    ]);
    expect(ack).toEqual({
      type: 'ack',
      seq: 7,
      rejected: [3, 4, 5, 6].map((seq) => ({ seq, reason: expect.stringMatching(/\S/) })),
    });
    expect(await connectionIds(c.url, 'rdsh-rej')).toEqual(['r0', 'r1', 'r2']);
    expect(await total(c.url, 'ras_license_users', { farm: 'farm-a' })).toBe(usersBefore + 2);
    expect(await total(c.url, 'rasmon_collector_events_total', { result: 'rejected' })).toBe(rejectedBefore + 4);
    // The rejected seqs count as applied: 8 follows 7 with no resync in between.
    expect(await agent.events([upsert(8, session('r3', 'corp\\carol'))])).toEqual({ type: 'ack', seq: 8 });
    await barrier(agent, 8);
    expect(types(agent)).not.toContain('resync');
    expect(await connectionIds(c.url, 'rdsh-rej')).toEqual(['r0', 'r1', 'r2', 'r3']);
  });

  it('an ack lists at most 50 rejections with ids cut short, all counted, so it stays small whatever the frame', async () => {
    const { agent } = await helloAgent(c.url, 'rdsh-many-bad');
    const rejectedBefore = await total(c.url, 'rasmon_collector_events_total', { result: 'rejected' });
    const bad = Array.from({ length: 1000 }, (_, i) => ({ seq: i + 1, at: -1, op: 'end', id: 'x' }));
    const ack = await agent.events(bad);
    expect(ack.seq).toBe(1000);
    expect(ack.rejected).toHaveLength(MAX_LISTED_REJECTIONS);
    expect(ack.rejected!.map((rejection) => rejection.seq)).toEqual(
      Array.from({ length: MAX_LISTED_REJECTIONS }, (_, i) => i + 1),
    );
    expect(await total(c.url, 'rasmon_collector_events_total', { result: 'rejected' })).toBe(rejectedBefore + 1000);
    const longId = { ...session('i'.repeat(5000), 'corp\\zoe'), admin: 'no' };
    const snapshotAck = await agent.snapshot(
      2000,
      Array.from({ length: 200 }, () => longId),
    );
    expect(snapshotAck.rejected).toHaveLength(MAX_LISTED_REJECTIONS);
    expect(snapshotAck.rejected![0]!.id).toHaveLength(MAX_REJECTION_ID_CHARS);
    expect(JSON.stringify(snapshotAck).length).toBeLessThan(MAX_COLLECTOR_FRAME_BYTES);
  });

  it('a snapshot leaves out an invalid session and a repeated id, names them in the ack, and applies the rest', async () => {
    const { agent } = await helloAgent(c.url, 'rdsh-snap');
    const first = session('s1', 'corp\\alice');
    const ack = await agent.snapshot(1, [
      first,
      { ...session('s-bad', 'corp\\mallory'), admin: 'yes' },
      session('s2', 'corp\\bob'),
      session('s1', 'corp\\mallory'),
    ]);
    expect(ack.seq).toBe(1);
    expect(ack.rejected).toHaveLength(2);
    expect(ack.rejected).toEqual(
      expect.arrayContaining([
        { seq: 1, reason: expect.stringMatching(/\S/), id: 's-bad' },
        { seq: 1, reason: expect.stringMatching(/\S/), id: 's1' },
      ]),
    );
    const connections = (await farmDetail(c.url)).connections.filter(
      (connection: any) => connection.host === 'rdsh-snap',
    );
    expect(connections.map((connection: any) => [connection.id, connection.user])).toEqual([
      ['s1', 'corp\\alice'],
      ['s2', 'corp\\bob'],
    ]);
    await barrier(agent, 1);
    expect(types(agent)).not.toContain('resync');
  });

  it('replayed events and a replayed snapshot are acked with the last applied seq and change nothing', async () => {
    const { agent } = await helloAgent(c.url, 'rdsh-dup');
    await agent.snapshot(1, [session('d1', 'corp\\alice')]);
    await agent.events([upsert(2, session('d2', 'corp\\bob')), upsert(3, session('d3', 'corp\\carol'))]);
    expect(await agent.events([end(4, 'd1')])).toEqual({ type: 'ack', seq: 4 });
    const before = await farmState(c.url);
    const duplicates = () => total(c.url, 'rasmon_collector_events_total', { result: 'duplicate' });
    const dupBefore = await duplicates();

    // Different content under old seqs: applying any of it would show.
    const replayed = await agent.events([
      upsert(2, session('d2', 'corp\\bob', { state: 'disconnected' })),
      upsert(3, session('d9', 'corp\\mallory')),
    ]);
    expect(replayed).toEqual({ type: 'ack', seq: 4 });
    expect(await farmState(c.url)).toEqual(before);
    const dupAfterEvents = await duplicates();
    expect(dupAfterEvents).toBe(dupBefore + 2);

    expect(await agent.snapshot(1, [session('d1', 'corp\\alice'), session('d8', 'corp\\mallory')])).toEqual({
      type: 'ack',
      seq: 4,
    });
    expect(await agent.snapshot(4, [])).toEqual({ type: 'ack', seq: 4 });
    expect(await farmState(c.url)).toEqual(before);
    expect(await duplicates()).toBeGreaterThan(dupAfterEvents);
    expect(await connectionIds(c.url, 'rdsh-dup')).toEqual(['d2', 'd3']);
  });

  it('in a frame mixing replayed and new events only the new ones apply', async () => {
    const { agent, welcome } = await helloAgent(c.url, 'rdsh-dup');
    expect(welcome.ack).toBe(4);
    const dupBefore = await total(c.url, 'rasmon_collector_events_total', { result: 'duplicate' });
    const ack = await agent.events([
      end(3, 'd2'),
      upsert(4, session('d7', 'corp\\mallory')),
      upsert(5, session('d5', 'corp\\erin')),
    ]);
    expect(ack).toEqual({ type: 'ack', seq: 5 });
    expect(await connectionIds(c.url, 'rdsh-dup')).toEqual(['d2', 'd3', 'd5']);
    expect(await total(c.url, 'rasmon_collector_events_total', { result: 'duplicate' })).toBe(dupBefore + 2);
  });

  it('a seq gap applies and acks the items before it, asks for a snapshot, and the snapshot repairs the host', async () => {
    const { agent } = await helloAgent(c.url, 'rdsh-gap');
    await agent.snapshot(1, [session('g1', 'corp\\alice')]);
    const ack = await agent.events([
      upsert(2, session('g2', 'corp\\bob')),
      upsert(3, session('g3', 'corp\\carol')),
      upsert(5, session('g5', 'corp\\erin')),
      upsert(6, session('g6', 'corp\\frank')),
    ]);
    expect(ack).toEqual({ type: 'ack', seq: 3 });
    expect(await agent.next('resync', 2000)).toEqual({ type: 'resync' });
    expect(await connectionIds(c.url, 'rdsh-gap')).toEqual(['g1', 'g2', 'g3']);

    const snapshot = [
      session('g1', 'corp\\alice'),
      session('g3', 'corp\\carol'),
      session('g4', 'corp\\dave'),
      session('g5', 'corp\\erin'),
      session('g6', 'corp\\frank'),
    ];
    expect(await agent.snapshot(6, snapshot)).toEqual({ type: 'ack', seq: 6 });
    expect(await connectionIds(c.url, 'rdsh-gap')).toEqual(['g1', 'g3', 'g4', 'g5', 'g6']);
    expect(await agent.events([end(7, 'g1')])).toEqual({ type: 'ack', seq: 7 });
    await barrier(agent, 7);
    expect(types(agent).filter((type) => type === 'resync')).toHaveLength(1);
    expect(await connectionIds(c.url, 'rdsh-gap')).toEqual(['g3', 'g4', 'g5', 'g6']);
  });

  it('welcome acks the last applied seq on reconnect with the same stream, and 0 for a new stream', async () => {
    const first = await helloAgent(c.url, 'rdsh-stream', { stream: 'install-1' });
    expect(first.welcome.ack).toBe(0);
    await first.agent.snapshot(1, [session('w1', 'corp\\alice')]);
    expect(
      await first.agent.events([upsert(2, session('w2', 'corp\\bob')), upsert(3, session('w3', 'corp\\carol'))]),
    ).toEqual({
      type: 'ack',
      seq: 3,
    });
    await first.agent.close();

    const same = await helloAgent(c.url, 'rdsh-stream', { stream: 'install-1' });
    expect(same.welcome).toEqual<WelcomeFrame>({
      type: 'welcome',
      ack: 3,
      heartbeatSeconds: 15,
      limits: { maxFrameBytes: 1_048_576, maxEvents: 1000, maxSessions: 2000 },
      features: ['status'],
    });
    await same.agent.close();

    const fresh = await helloAgent(c.url, 'rdsh-stream', { stream: 'install-2' });
    expect(fresh.welcome.ack).toBe(0);
    // The new stream starts again at 1: its first snapshot is applied, not taken for a duplicate.
    expect(await fresh.agent.snapshot(1, [session('w9', 'corp\\dave')])).toEqual<AckFrame>({ type: 'ack', seq: 1 });
    expect(await connectionIds(c.url, 'rdsh-stream')).toEqual(['w9']);
  });
});

describe('hello deadline', () => {
  it('a connection that never says hello is closed with hello_required after two heartbeats', async () => {
    const c = await InProcessCollector.start(
      rawConfig(redis.url, [{ id: 'farm-a', seats: 10 }], { heartbeatSeconds: 1 }),
    );
    try {
      const silent = await TestAgent.connect(c.url, TOKEN_A);
      const talker = await TestAgent.connect(c.url, TOKEN_A);
      await talker.hello('farm-a', 'rdsh-1');
      const error = await silent.next<ErrorFrame>('error', 10_000);
      expect(error.code).toBe('hello_required');
      expect((await silent.closed).code).toBe(1008);
      // The agent that said hello is kept.
      await sleep(1200);
      expect(talker.socket.readyState).toBe(talker.socket.OPEN);
      await talker.close();
    } finally {
      await c.stop();
    }
  });
});

describe('Redis unreachable', () => {
  let own: RedisServer;
  let c: InProcessCollector;
  beforeAll(async () => {
    own = await RedisServer.start();
    c = await InProcessCollector.start(rawConfig(own.url, [{ id: 'farm-a', seats: 10 }], { heartbeatSeconds: 1 }), {
      tickMs: 100,
    });
  });
  afterAll(async () => {
    await c.stop();
    await own.stop();
  });

  it('idle agents stay connected, a frame is not acked and closes 1013, and the collector is ready again after Redis returns', async () => {
    const { agent } = await helloAgent(c.url, 'rdsh-1');
    expect(await agent.snapshot(1, [session('x1', 'corp\\alice')])).toEqual({ type: 'ack', seq: 1 });
    expect((await fetch(`${c.url}/readyz`)).status).toBe(200);

    await own.kill();
    await expect.poll(async () => (await fetch(`${c.url}/readyz`)).status, { timeout: 15_000 }).toBe(503);
    // Two heartbeats (1 s) whose lease renewals fail: the idle connection must stay open.
    await sleep(2200);
    expect(agent.socket.readyState).toBe(agent.socket.OPEN);
    expect(types(agent)).not.toContain('error');

    agent.send({ type: 'events', events: [upsert(2, session('x2', 'corp\\bob'))] });
    expect(await closeCode(agent)).toBe(1013);
    expect(agent.received.filter((f) => f.type === 'ack' && f.seq === 2)).toEqual([]);

    await own.restart();
    await expect.poll(async () => (await fetch(`${c.url}/readyz`)).status, { timeout: 10_000 }).toBe(200);
    const again = await helloAgent(c.url, 'rdsh-1');
    // Redis came back empty: the stream is unknown again, and the agent's snapshot is applied.
    expect(again.welcome.ack).toBe(0);
    expect(await again.agent.snapshot(2, [session('x1', 'corp\\alice'), session('x2', 'corp\\bob')])).toEqual({
      type: 'ack',
      seq: 2,
    });
  });
});
