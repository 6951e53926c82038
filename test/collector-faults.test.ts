/**
 * Faults the collector must survive with the farm ending equal to the truth (docs/design.md §6): the
 * collector killed mid-stream, Redis restarted empty (or not), connections cut without a close,
 * silent agents, and hosts retired after going stale (docs/design.md §2 rule 10).
 */
import { beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { RedisKeys } from '@rasmon/collector';
import { ReferenceFarm, type ErrorFrame, type Session } from '@rasmon/protocol';
import { RedisServer } from './support/redis-server.js';
import { useRedis } from './support/use-redis.js';
import { CollectorProcess, InProcessCollector, rawConfig } from './support/collector-harness.js';
import { TestAgent, end, session, upsert } from './support/agent-client.js';
import { Scrape } from './support/prometheus-text.js';
import { UNMARKED_REBUILD_MS } from '../collector/dist/engine/license-engine.js';

const redis = useRedis();
let client: Redis;
beforeAll(() => {
  client = redis.client();
});

const prefixOf = (raw: Record<string, unknown>) => (raw.redis as { prefix: string }).prefix;

async function inProcess(raw: Record<string, unknown>, tickMs = 100): Promise<InProcessCollector> {
  const collector = await InProcessCollector.start(raw, { tickMs });
  onTestFinished(() => collector.stop());
  return collector;
}

async function agentOn(
  url: string,
  host: string,
  stream = `stream-${host}`,
  token = 'token-farm-a',
): Promise<TestAgent> {
  const agent = await TestAgent.connect(url, token);
  onTestFinished(() => agent.socket.terminate());
  await agent.hello('farm-a', host, stream);
  return agent;
}

/**
 * Every key of the collector's prefix gone at once, as Redis restarted empty leaves it: one DEL, so
 * no heartbeat of the collector's meets a farm half deleted (its epoch still there, its host gone:
 * its lease renewal would answer `superseded` and close the agent).
 */
async function loseData(raw: Record<string, unknown>): Promise<void> {
  const keys = await client.keys(`${prefixOf(raw)}:*`);
  if (keys.length > 0) await client.del(...keys);
}

/** Sends a snapshot and waits for its own ack, past any other ack received meanwhile. */
async function snapshotAcked(agent: TestAgent, seq: number, sessions: Session[]): Promise<void> {
  agent.send({ type: 'snapshot', seq, at: Date.now(), sessions });
  await vi.waitFor(() => expect(agent.received).toContainEqual({ type: 'ack', seq }), { timeout: 10_000 });
}

const farmA = (labels: Record<string, string> = {}) => ({ farm: 'farm-a', ...labels });

/** Waits until the collector shows farm-a rebuilt (its own mark lapses 5 s after the loss) with `users`. */
async function rebuiltWith(url: string, users: number): Promise<void> {
  await vi.waitFor(
    async () => {
      const scrape = await Scrape.from(url);
      expect(scrape.value('ras_farm_rebuilding', farmA())).toBe(0);
      expect(scrape.value('ras_license_users', farmA())).toBe(users);
    },
    { timeout: 15_000 },
  );
}

/** A deterministic pseudo-random stream of items for one host, with the truth it implies. */
function scriptedStream(count: number, firstSeq: number, initial: Session[]) {
  let state = 0x2545f491;
  const rand = (n: number) => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return (state >>> 8) % n;
  };
  const open = new Map(initial.map((s) => [s.id, s]));
  const events: Array<ReturnType<typeof upsert> | ReturnType<typeof end>> = [];
  let nextId = 100;
  for (let seq = firstSeq; seq < firstSeq + count; seq += 1) {
    const roll = rand(10);
    const ids = [...open.keys()];
    if (ids.length < 4 || (roll < 5 && ids.length < 16)) {
      const s = session(String((nextId += 1)), `corp\\u${rand(12)}`, { kind: rand(3) === 0 ? 'app' : 'desktop' });
      open.set(s.id, s);
      events.push(upsert(seq, s));
    } else if (roll < 7) {
      const held = open.get(ids[rand(ids.length)]!)!;
      const changed: Session = { ...held, state: held.state === 'active' ? 'disconnected' : 'active' };
      open.set(changed.id, changed);
      events.push(upsert(seq, changed));
    } else {
      const id = ids[rand(ids.length)]!;
      open.delete(id);
      events.push(end(seq, id));
    }
  }
  return { events, open };
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

describe('collector killed mid-stream', () => {
  it('after SIGKILL and restart the agent resumes from the last applied seq and the farm equals the truth', async () => {
    // 5 frames a second for the connection (a burst of 5): the kill after the third ack lands with frames still
    // queued, however fast the machine applies them.
    const raw = rawConfig(redis.url, [{ id: 'farm-a', seats: 4 }], { limits: { framesPerSecondPerConnection: 5 } });
    const keys = new RedisKeys(prefixOf(raw));
    const first = await CollectorProcess.start(raw);
    onTestFinished(() => first.stop());

    const initial = [session('1', 'corp\\u0'), session('2', 'corp\\u1', { kind: 'app' })];
    const { events, open } = scriptedStream(600, 2, initial);
    const lastSeq = events.at(-1)!.seq;
    const frames = chunks(events, 50);

    const agent = await agentOn(first.url, 'rdsh-1', 'stream-k');
    expect((await agent.snapshot(1, initial)).seq).toBe(1);
    let acksSeen = 0;
    agent.socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string };
      if (frame.type === 'ack' && (acksSeen += 1) === 3) first.signal('SIGKILL');
    });
    for (const frame of frames) agent.send({ type: 'events', events: frame });
    expect((await vi.waitFor(() => first.exited, { timeout: 10_000 })).signal).toBe('SIGKILL');
    await vi.waitFor(() => agent.closed, { timeout: 10_000 });
    const acked = agent.received.flatMap((frame) => (frame.type === 'ack' ? [frame.seq] : []));
    const lastAck = Math.max(...acked);
    expect(lastAck, 'frames were still unacked when the collector died').toBeLessThan(lastSeq);
    const applied = Number(await client.hget(keys.host('farm-a', 'rdsh-1').host, 'seq'));

    const second = await CollectorProcess.start(raw, { port: first.port, configPath: first.configPath });
    onTestFinished(() => second.stop());
    const again = await TestAgent.connect(second.url, 'token-farm-a');
    onTestFinished(() => again.socket.terminate());
    const welcome = await again.hello('farm-a', 'rdsh-1', 'stream-k');
    expect(welcome.ack).toBe(applied);
    expect(welcome.ack).toBeGreaterThanOrEqual(lastAck);

    // A replay of what was applied before the kill is only duplicates, answered with the ack.
    expect(await again.events(frames[0]!)).toEqual({ type: 'ack', seq: welcome.ack });
    for (const frame of chunks(
      events.filter((event) => event.seq > welcome.ack),
      50,
    )) {
      expect((await again.events(frame)).seq).toBe(frame.at(-1)!.seq);
    }

    const truth = new ReferenceFarm({ seats: 4 });
    const now = Date.now();
    truth.connect('rdsh-1', now);
    truth.snapshot('rdsh-1', initial, now);
    for (const event of events) {
      if (event.op === 'upsert') truth.upsert('rdsh-1', (event as ReturnType<typeof upsert>).session, now);
      else truth.end('rdsh-1', (event as ReturnType<typeof end>).id, now);
    }
    const usage = truth.usage();
    const scrape = await Scrape.from(second.url);
    expect(scrape.value('ras_license_users', farmA())).toBe(usage.users);
    expect(scrape.value('ras_license_overuse_admissions_total', farmA())).toBe(truth.overuseAdmissions);
    expect(scrape.value('ras_license_peak_users', farmA())).toBe(truth.peakUsers);
    expect(scrape.value('ras_host_connections', farmA({ host: 'rdsh-1' }))).toBe(open.size);
    expect(scrape.value('ras_agent_up', farmA({ host: 'rdsh-1' }))).toBe(1);
    const detail = (await (await fetch(`${second.url}/api/v1/farms/farm-a`)).json()) as any;
    const held = detail.connections.map((c: any) => `${c.id} ${c.user} ${c.state}`).sort();
    expect(held).toEqual([...open.values()].map((s) => `${s.id} ${s.user} ${s.state}`).sort());
    expect(new Set(detail.connections.filter((c: any) => c.consumes).map((c: any) => c.user)).size).toBe(usage.users);

    // The agent's periodic snapshot finds nothing to correct.
    expect((await again.snapshot(lastSeq + 1, [...open.values()])).seq).toBe(lastSeq + 1);
    const healed = await Scrape.from(second.url);
    expect(healed.value('ras_snapshot_corrections_total', farmA())).toBe(0);
    expect(healed.value('ras_license_users', farmA())).toBe(usage.users);
  });
});

describe('Redis restarted', () => {
  /** Two collectors sharing one Redis and prefix, an agent on each. */
  async function twoCollectors(server: { url: string }) {
    const raw = rawConfig(server.url, [{ id: 'farm-a', seats: 10 }]);
    const one = await inProcess(raw);
    const two = await inProcess(raw);
    const a = await agentOn(one.url, 'rdsh-1');
    const b = await agentOn(two.url, 'rdsh-2');
    const sessionsA = [session('1', 'corp\\alice'), session('2', 'corp\\bob', { kind: 'app' })];
    const sessionsB = [session('1', 'corp\\bob'), session('2', 'corp\\carol'), session('3', 'corp\\dave')];
    await a.snapshot(1, sessionsA);
    await b.snapshot(1, sessionsB);
    /** Both collectors show the truth: 4 users, both hosts up and holding their sessions. */
    const showTruth = async () => {
      for (const collector of [one, two]) {
        const scrape = await Scrape.from(collector.url);
        expect(scrape.value('ras_license_users', farmA())).toBe(4);
        expect(scrape.value('ras_license_users_unverified', farmA())).toBe(0);
        expect(scrape.value('ras_host_connections', farmA({ host: 'rdsh-1' }))).toBe(2);
        expect(scrape.value('ras_host_connections', farmA({ host: 'rdsh-2' }))).toBe(3);
        expect(scrape.value('ras_agent_up', farmA({ host: 'rdsh-1' }))).toBe(1);
        expect(scrape.value('ras_agent_up', farmA({ host: 'rdsh-2' }))).toBe(1);
      }
    };
    await showTruth();
    return { one, two, a, b, sessionsA, sessionsB, showTruth, keys: new RedisKeys(prefixOf(raw)) };
  }

  it('with two collectors, a farm one of them has not yet found lost stays rebuilding after the hosts of the other resent', async () => {
    // `one` finds the loss at its round; `two`'s round does not come within the test (its epoch came
    // from the hello), and its agent's heartbeat, the other way it could find the loss, is not due
    // within the test once its slot has passed (a slot every 100 ms from the start, the first
    // connection's the second): so `two` does not mark its host before `one`'s has resent.
    const raw = rawConfig(redis.url, [{ id: 'farm-a', seats: 10 }], { heartbeatSeconds: 300 });
    const one = await inProcess(raw);
    const two = await inProcess(raw, 60_000);
    const a = await agentOn(one.url, 'rdsh-1');
    const b = await agentOn(two.url, 'rdsh-2');
    const sessionsA = [session('1', 'corp\\alice')];
    const sessionsB = [session('1', 'corp\\bob'), session('2', 'corp\\carol')];
    await a.snapshot(1, sessionsA);
    await b.snapshot(1, sessionsB);
    await sleep(1000);
    await loseData(raw);
    const lostAt = Date.now();

    expect(await a.next('resync', 15_000)).toEqual({ type: 'resync' });
    // A scrape meanwhile (its reader then knows the new epoch, so no later read withholds the farm
    // for having found it replaced).
    expect((await Scrape.from(one.url)).value('ras_farm_rebuilding', farmA())).toBe(1);
    await snapshotAcked(a, 2, sessionsA);
    // rdsh-1 resent; rdsh-2, not marked, holds 2 of the farm's 3 users: the farm is withheld (by
    // its own mark, stored with the new epoch), not shown at 1 user.
    expect(b.received.filter((frame) => frame.type === 'resync')).toEqual([]);
    expect(await client.zrange(new RedisKeys(prefixOf(raw)).rebuilding('farm-a'), '0', '-1')).not.toContain('rdsh-2');
    const scrape = await Scrape.from(one.url);
    // The farm's own mark lasts UNMARKED_REBUILD_MS from the round that found the loss: a machine
    // slower than that to get here could not show the case.
    expect(Date.now() - lostAt, 'from the loss to the scrape, longer than the farm mark lasts').toBeLessThan(
      UNMARKED_REBUILD_MS,
    );
    expect(scrape.value('ras_farm_rebuilding', farmA())).toBe(1);
    expect(scrape.value('ras_license_users', farmA())).toBeUndefined();

    // `two` finds the loss at its agent's next frame (not acked: the epoch is gone), its agent
    // resends, and the farm is whole once the farm's own mark has lapsed.
    b.send({ type: 'events', events: [upsert(2, session('3', 'corp\\dave'))] });
    expect(await b.next('resync', 15_000)).toEqual({ type: 'resync' });
    await snapshotAcked(b, 3, sessionsB);
    await rebuiltWith(one.url, 3);
  });

  it('an empty Redis after a restart makes every collector resync its agents, whose snapshots rebuild the farm', async () => {
    const { one, two, a, b, sessionsA, sessionsB, showTruth, keys } = await twoCollectors(redis);
    await redis.restart();
    // Only the agents' snapshots can bring the connections back.
    expect(await client.hlen(keys.host('farm-a', 'rdsh-2').conns)).toBe(0);

    expect(await a.next('resync', 15_000)).toEqual({ type: 'resync' });
    expect(await b.next('resync', 15_000)).toEqual({ type: 'resync' });
    // Until the agents resend, the farm is rebuilding: its numbers are withheld, never shown as 0
    // users (which would resolve every overuse alert), on both collectors.
    for (const collector of [one, two]) {
      const scrape = await Scrape.from(collector.url);
      expect(scrape.value('ras_farm_rebuilding', farmA())).toBe(1);
      expect(scrape.value('ras_license_users', farmA())).toBeUndefined();
      expect(scrape.all('ras_license_info', farmA())).toEqual([]);
      const doc = (await (await fetch(`${collector.url}/api/v1/farms/farm-a`)).json()) as { rebuilding: boolean };
      expect(doc.rebuilding).toBe(true);
    }
    expect((await a.snapshot(2, sessionsA)).seq).toBe(2);
    // One host resent, the other not yet: still rebuilding.
    expect((await Scrape.from(one.url)).value('ras_farm_rebuilding', farmA())).toBe(1);
    expect((await b.snapshot(2, sessionsB)).seq).toBe(2);
    await vi.waitFor(showTruth, { timeout: 15_000 });
    expect((await Scrape.from(two.url)).value('ras_farm_rebuilding', farmA())).toBe(0);
    // The month's distinct users, lost with the data, are back from the snapshots at once: neither
    // collector skips a user because it wrote it before the loss.
    const monthSets = await client.keys(keys.monthUsers('farm-a', '*'));
    expect(monthSets).toHaveLength(1);
    expect((await client.smembers(monthSets[0]!)).sort()).toEqual([
      'corp\\alice',
      'corp\\bob',
      'corp\\carol',
      'corp\\dave',
    ]);
    // One resync each, and both agents still connected.
    expect(a.received.filter((frame) => frame.type === 'resync')).toHaveLength(1);
    expect(b.received.filter((frame) => frame.type === 'resync')).toHaveLength(1);
    expect(one.collector.ready && two.collector.ready).toBe(true);
  });

  it('a farm whose data Redis lost is withheld, not exported empty, before any collector has noticed', async () => {
    // The farm clock runs once at start and then not for a minute, and the agent has at most one
    // heartbeat within the test: the scrapes below fall between the loss and the round that would
    // recreate the farm's epoch and ask its agents to resend (a heartbeat after the loss would find
    // it first, and withhold the farm all the same).
    const raw = rawConfig(redis.url, [{ id: 'farm-a', seats: 2 }], { heartbeatSeconds: 300 });
    const collector = await inProcess(raw, 60_000);
    const agent = await agentOn(collector.url, 'rdsh-1');
    await agent.snapshot(1, [session('1', 'corp\\alice'), session('2', 'corp\\bob'), session('3', 'corp\\carol')]);
    await vi.waitFor(
      async () => {
        expect((await Scrape.from(collector.url)).value('ras_license_users', farmA())).toBe(3);
      },
      { timeout: 15_000 },
    );
    // The farm document as the status page reads it, before the loss.
    const before = (await (await fetch(`${collector.url}/api/v1/farms/farm-a`)).json()) as { users: number };
    expect(before.users).toBe(3);
    const keys = new RedisKeys(prefixOf(raw));
    await loseData(raw);
    expect(await client.exists(keys.farm('farm-a').epoch)).toBe(0);
    // Two scrapes, more than the series' one-second cache apart: both re-read the emptied farm.
    for (let i = 0; i < 2; i += 1) {
      const scrape = await Scrape.from(collector.url);
      expect(scrape.value('ras_farm_rebuilding', farmA())).toBe(1);
      expect(scrape.value('ras_license_users', farmA())).toBeUndefined();
      expect(scrape.value('ras_license_overuse_users', farmA())).toBeUndefined();
      await sleep(1100);
    }
    const doc = (await (await fetch(`${collector.url}/api/v1/farms/farm-a`)).json()) as { rebuilding: boolean };
    expect(doc.rebuilding).toBe(true);
  });

  it('a frame that meets the loss before the farm clock does marks the whole farm before any host resends, and the snapshots end the rebuild', async () => {
    // The farm clock runs once at start and then not for a minute, and each agent has at most one
    // heartbeat within the test: the frame below notices the loss (or a heartbeat just before it,
    // which marks the farm and asks for the same snapshots).
    const raw = rawConfig(redis.url, [{ id: 'farm-a', seats: 10 }], { heartbeatSeconds: 300 });
    const collector = await inProcess(raw, 60_000);
    const a = await agentOn(collector.url, 'rdsh-1');
    const b = await agentOn(collector.url, 'rdsh-2');
    const sessionsA = [session('1', 'corp\\alice'), session('2', 'corp\\bob')];
    const sessionsB = [session('1', 'corp\\carol')];
    await a.snapshot(1, sessionsA);
    await b.snapshot(1, sessionsB);
    const keys = new RedisKeys(prefixOf(raw));
    await loseData(raw);

    // Not acked (the epoch is gone); the collector reads the farm's new epoch and, before asking
    // this agent to resend, marks every host of the farm it holds, rdsh-2's too.
    a.send({ type: 'events', events: [upsert(2, session('3', 'corp\\dave'))] });
    expect(await a.next('resync', 15_000)).toEqual({ type: 'resync' });
    expect(await b.next('resync', 15_000)).toEqual({ type: 'resync' });
    // Its hosts' marks, beside the farm's own, stored with the new epoch (tick.lua).
    expect((await client.zrange(keys.rebuilding('farm-a'), '0', '-1')).sort()).toEqual(['', 'rdsh-1', 'rdsh-2']);
    expect((await Scrape.from(collector.url)).value('ras_farm_rebuilding', farmA())).toBe(1);

    // Acked by seq: had a heartbeat met the loss just before the frame, the frame was answered too
    // (a seq gap under the new epoch, ack 0), and that ack would come first.
    await snapshotAcked(a, 3, [...sessionsA, session('3', 'corp\\dave')]);
    await snapshotAcked(b, 2, sessionsB);
    // Each snapshot took its own host's mark away: only the farm's own is left, for its 5 s.
    expect(await client.zrange(keys.rebuilding('farm-a'), '0', '-1')).toEqual(['']);
    await rebuiltWith(collector.url, 4);
    expect(a.received.filter((frame) => frame.type === 'resync')).toHaveLength(1);
    expect(b.received.filter((frame) => frame.type === 'resync')).toHaveLength(1);
  });

  it('a Redis that kept its data across a restart causes no resync and the farm survives', async () => {
    const persistent = await RedisServer.start({ persistent: true });
    onTestFinished(() => persistent.stop());
    const { one, two, a, b, showTruth } = await twoCollectors(persistent);
    await persistent.restart();
    await expect.poll(() => one.collector.ready && two.collector.ready, { timeout: 15_000 }).toBe(true);
    // Long enough for many farm ticks (100 ms) on both collectors to compare epochs.
    await sleep(1500);
    expect(a.received.filter((frame) => frame.type === 'resync')).toEqual([]);
    expect(b.received.filter((frame) => frame.type === 'resync')).toEqual([]);
    await showTruth();
    expect((await a.events([upsert(2, session('3', 'corp\\erin'))])).seq).toBe(2);
    expect((await Scrape.from(two.url)).value('ras_license_users', farmA())).toBe(5);
  });
});

describe('connections lost', () => {
  async function farmWithTwoHosts(extra: Record<string, unknown>) {
    const raw = rawConfig(redis.url, [{ id: 'farm-a', seats: 10 }], extra);
    const collector = await inProcess(raw);
    const cut = await agentOn(collector.url, 'rdsh-1', 'stream-cut');
    const steady = await agentOn(collector.url, 'rdsh-2');
    // alice is held only through rdsh-1; bob also through rdsh-2.
    const sessions1 = [session('1', 'corp\\alice'), session('2', 'corp\\bob')];
    await cut.snapshot(1, sessions1);
    await cut.events([upsert(2, session('3', 'corp\\alice', { kind: 'app' }))]);
    await steady.snapshot(1, [session('1', 'corp\\bob', { kind: 'app' }), session('2', 'corp\\carol')]);
    const metric = async (name: string, labels: Record<string, string> = {}) =>
      (await Scrape.from(collector.url)).value(name, farmA(labels));
    expect(await metric('ras_license_users')).toBe(3);
    expect(await metric('ras_agent_up', { host: 'rdsh-1' })).toBe(1);
    return { collector, cut, steady, metric };
  }

  it('a connection cut without a close makes its host stale at once, its users unverified, until the agent is back', async () => {
    const { collector, cut, metric } = await farmWithTwoHosts({ heartbeatSeconds: 1 });
    cut.socket.terminate();
    await expect.poll(() => metric('ras_agent_up', { host: 'rdsh-1' }), { timeout: 15_000 }).toBe(0);
    expect(await metric('ras_license_users')).toBe(3);
    expect(await metric('ras_license_users_unverified')).toBe(1);
    expect(await metric('ras_host_connections', { host: 'rdsh-1' })).toBe(3);
    expect(await metric('ras_agent_up', { host: 'rdsh-2' })).toBe(1);

    const back = await agentOn(collector.url, 'rdsh-1', 'stream-cut');
    expect(back.received[0]).toMatchObject({ type: 'welcome', ack: 2 });
    expect(await metric('ras_agent_up', { host: 'rdsh-1' })).toBe(1);
    expect(await metric('ras_license_users_unverified')).toBe(0);
    expect(await metric('ras_license_users')).toBe(3);
  });

  it('a silent agent is terminated after two heartbeats and its host turns stale', async () => {
    const { collector, cut, metric } = await farmWithTwoHosts({ heartbeatSeconds: 1 });
    // The agent stops reading: it answers no ping, as a peer behind a dead link would.
    cut.socket.pause();
    await expect.poll(() => metric('ras_agent_up', { host: 'rdsh-1' }), { timeout: 10_000 }).toBe(0);
    expect(
      (await Scrape.from(collector.url)).value('rasmon_collector_agents_dropped_total', { reason: 'silent' }),
    ).toBe(1);
    expect(await metric('ras_license_users_unverified')).toBe(1);
    expect(await metric('ras_license_users')).toBe(3);
    expect(await metric('ras_agent_up', { host: 'rdsh-2' })).toBe(1);
  });

  it('a stale host is retired after hostRetireSeconds and its next snapshot brings its users back', async () => {
    const { collector, cut, metric } = await farmWithTwoHosts({ heartbeatSeconds: 1, hostRetireSeconds: 2 });
    cut.socket.terminate();
    await vi.waitFor(
      async () => {
        expect(await metric('ras_host_connections', { host: 'rdsh-1' })).toBe(0);
        expect(await metric('ras_license_users')).toBe(2);
      },
      { timeout: 12_000 },
    );
    expect(await metric('ras_license_users_unverified')).toBe(0);
    // The host that kept its agent is not retired.
    expect(await metric('ras_host_connections', { host: 'rdsh-2' })).toBe(2);

    const back = await agentOn(collector.url, 'rdsh-1', 'stream-cut');
    expect(back.received[0]).toMatchObject({ type: 'welcome', ack: 2 });
    // Events alone do not bring a retired host back; its snapshot does.
    expect((await back.events([upsert(3, session('4', 'corp\\dave'))])).seq).toBe(3);
    expect(await metric('ras_license_users')).toBe(2);
    await back.snapshot(4, [session('1', 'corp\\alice'), session('2', 'corp\\bob'), session('4', 'corp\\dave')]);
    expect(await metric('ras_host_connections', { host: 'rdsh-1' })).toBe(3);
    expect(await metric('ras_license_users')).toBe(4);
    expect(await metric('ras_license_users_unverified')).toBe(0);
    expect(await metric('ras_agent_up', { host: 'rdsh-1' })).toBe(1);
  });

  it("a retired host's upsert before its snapshot is acked but its user is neither counted nor in the month's set until the snapshot", async () => {
    const { collector, cut, metric } = await farmWithTwoHosts({ heartbeatSeconds: 1, hostRetireSeconds: 2 });
    cut.socket.terminate();
    await vi.waitFor(async () => expect(await metric('ras_host_connections', { host: 'rdsh-1' })).toBe(0), {
      timeout: 12_000,
    });
    // Every month's set of the farm (the month may turn while the test runs).
    const keys = new RedisKeys(collector.config.redis.prefix);
    const inMonthSets = async (user: string) => {
      const sets = await client.keys(keys.monthUsers('farm-a', '*'));
      return (await Promise.all(sets.map((key) => client.sismember(key, user)))).some((found) => found === 1);
    };
    expect(await inMonthSets('corp\\alice')).toBe(true);

    const back = await agentOn(collector.url, 'rdsh-1', 'stream-cut');
    expect(back.received[0]).toMatchObject({ type: 'welcome', ack: 2 });
    // dave's session, new to the farm, comes as an event before the snapshot: held, yet applied.
    const ack = await back.events([upsert(3, session('4', 'corp\\dave'))]);
    expect(ack).toEqual({ type: 'ack', seq: 3 });
    expect(await metric('ras_license_users')).toBe(2);
    expect(await inMonthSets('corp\\dave')).toBe(false);
    // The stream goes on from the acked seq: the snapshot after it lists dave's session.
    expect((await back.snapshot(4, [session('1', 'corp\\alice'), session('4', 'corp\\dave')])).seq).toBe(4);
    expect(await metric('ras_host_connections', { host: 'rdsh-1' })).toBe(2);
    expect(await metric('ras_license_users')).toBe(4);
    expect(await inMonthSets('corp\\dave')).toBe(true);
  });

  it('a connection closed for a protocol error releases its host at once', async () => {
    const { cut, metric } = await farmWithTwoHosts({});
    cut.send('{ this is not json');
    expect((await cut.next<ErrorFrame>('error')).code).toBe('bad_frame');
    // docs/design.md §2 rule 10: the lease ends with the connection, not when ws gives up on the closing handshake.
    await expect.poll(() => metric('ras_agent_up', { host: 'rdsh-1' }), { timeout: 15_000 }).toBe(0);
    expect(await metric('ras_license_users_unverified')).toBe(1);
    expect((await vi.waitFor(() => cut.closed, { timeout: 15_000 })).code).toBe(1007);
  });
});
