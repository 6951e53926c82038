/**
 * The real agent bin against the real collector bin and a private Redis (docs/design.md §5, §6): a seeded
 * simulator is the ground truth, written to a file the agent's `command` source reads, and after
 * every fault the farm the collector holds must equal it — with no event lost where the spool had
 * room for them all, and the snapshot repairing what a full spool had to drop.
 */
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { evaluateUsage, normalizeUser, type AgentEvent, type Session } from '@rasmon/protocol';
import { freePort } from './support/free-port.js';
import { useRedis } from './support/use-redis.js';
import { CollectorProcess, rawConfig } from './support/collector-harness.js';
import { Scrape } from './support/prometheus-text.js';
import { AgentProcess, readSpool } from './support/agent-process.js';
import { SimulatedHost } from './support/agent-simulated-host.js';
import { CuttingProxy } from './support/agent-cutting-proxy.js';

const FARM = 'farm-a';
const HOST = 'rdsh-01';
const TOKEN = 'token-farm-a';
const SEATS = 1000;

const redis = useRedis();

async function startCollector(raw: Record<string, unknown>, options: { port?: number; configPath?: string } = {}) {
  const collector = await CollectorProcess.start(raw, options);
  onTestFinished(() => collector.stop());
  return collector;
}

async function startAgent(config: Record<string, unknown>, options: { configPath?: string } = {}) {
  const agent = await AgentProcess.start(config, options);
  onTestFinished(() => agent.kill());
  return agent;
}

interface Rig {
  dir: string;
  spoolDir: string;
  host: SimulatedHost;
  raw: Record<string, unknown>;
  collector: CollectorProcess;
  agent: AgentProcess;
  agentConfig: Record<string, unknown>;
}

/**
 * Redis, a collector process, a simulated host and an agent process reading it. `via` puts
 * something (a proxy) between agent and collector: it gets the collector's port, returns the URL.
 */
async function rig(options: {
  seed: number;
  collectorExtra?: Record<string, unknown>;
  spool?: Record<string, unknown>;
  via?: (collectorPort: number) => Promise<string>;
}): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'rasmon-agent-e2e-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const host = new SimulatedHost(dir, { seed: options.seed, host: HOST });
  const raw = rawConfig(redis.url, [{ id: FARM, seats: SEATS, token: TOKEN }], options.collectorExtra ?? {});
  const collector = await startCollector(raw);
  const url = options.via ? await options.via(collector.port) : `ws://127.0.0.1:${collector.port}`;
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  const spoolDir = join(dir, 'spool');
  const agentConfig = {
    collector: url,
    tokenFile,
    farm: FARM,
    host: HOST,
    source: 'command',
    command: host.command,
    pollIntervalSeconds: 0.1,
    // Large: no periodic snapshot may repair anything during a test.
    snapshotIntervalSeconds: 3600,
    spool: { dir: spoolDir, ...options.spool },
    reconnect: { initialSeconds: 0.1, maxSeconds: 0.5, supersededSeconds: 1 },
    metrics: { listen: `127.0.0.1:${await freePort()}` },
  };
  const agent = await startAgent(agentConfig);
  return { dir, spoolDir, host, raw, collector, agent, agentConfig };
}

interface ConnectionView {
  id: string;
  user: string;
  admin: boolean;
  kind: string;
  via: string;
  state: string;
  since: string;
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The truth as the collector must show it: users normalized (docs/design.md §2 rule 4), `since` as the API's ISO text. */
function truthView(sessions: readonly Session[]): ConnectionView[] {
  return sessions
    .map((s) => ({
      id: s.id,
      user: normalizeUser(s.user),
      admin: s.admin,
      kind: s.kind,
      via: s.via,
      state: s.state,
      since: new Date(s.since).toISOString(),
    }))
    .sort(byId);
}

/** This host's connections as the collector's API gives them. */
async function farmView(collector: CollectorProcess): Promise<ConnectionView[]> {
  const res = await fetch(`${collector.url}/api/v1/farms/${FARM}`);
  expect(res.status).toBe(200);
  const detail = (await res.json()) as { connections: Array<ConnectionView & { host: string }> };
  return detail.connections
    .filter((c) => c.host === HOST)
    .map(({ id, user, admin, kind, via, state, since }) => ({ id, user, admin, kind, via, state, since }))
    .sort(byId);
}

/** The farm the collector holds equals the truth: every connection, and the users the reference model counts. */
async function expectFarmEqualsTruth(collector: CollectorProcess, truth: readonly Session[]): Promise<void> {
  expect(await farmView(collector)).toEqual(truthView(truth));
  const usage = evaluateUsage({
    seats: SEATS,
    countDisconnected: true,
    hosts: [
      {
        host: HOST,
        live: true,
        retired: false,
        connections: truth.map((s) => ({ ...s, user: normalizeUser(s.user) })),
      },
    ],
  });
  const scrape = await Scrape.from(collector.url);
  expect(scrape.value('ras_license_users', { farm: FARM })).toBe(usage.users);
  expect(scrape.value('ras_connections_exempt', { farm: FARM })).toBe(usage.exemptConnections);
  expect(scrape.value('ras_host_connections', { farm: FARM, host: HOST })).toBe(truth.length);
  expect(scrape.value('ras_agent_up', { farm: FARM, host: HOST })).toBe(1);
}

/** Waits for the farm to catch up with the host's current truth. */
async function settlesToTruth(collector: CollectorProcess, host: SimulatedHost, timeoutMs = 10_000): Promise<void> {
  const truth = host.sessions();
  expect(truth.length, 'a truth with sessions in it').toBeGreaterThan(0);
  await vi.waitFor(() => expectFarmEqualsTruth(collector, truth), { timeout: timeoutMs });
}

/** Waits until the agent is welcomed and holds nothing unacked, its last snapshot included. */
async function agentIdle(agent: AgentProcess, spoolDir: string, timeoutMs = 10_000): Promise<void> {
  await vi.waitFor(
    async () => {
      const scrape = await agent.scrape();
      expect(scrape.value('rasmon_agent_connected')).toBe(1);
      expect(scrape.value('rasmon_agent_spool_events')).toBe(0);
      const { state } = readSpool(spoolDir);
      expect(state.acked).toBeGreaterThanOrEqual(state.reserved);
    },
    { timeout: timeoutMs },
  );
}

async function agentDisconnected(agent: AgentProcess, timeoutMs = 10_000): Promise<void> {
  await expect.poll(() => agent.metric('rasmon_agent_connected'), { timeout: timeoutMs }).toBe(0);
}

/** Collector counters; a series never touched reads as 0. */
async function collectorCount(
  collector: CollectorProcess,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  return (await Scrape.from(collector.url)).value(name, labels) ?? 0;
}

const corrections = (collector: CollectorProcess) =>
  collectorCount(collector, 'ras_snapshot_corrections_total', { farm: FARM });

/** Steps the truth `count` times by `stepMs`, giving the agent time to read each list on its own. */
async function stepWhileAgentPolls(host: SimulatedHost, count: number, stepMs = 30_000): Promise<void> {
  for (let i = 0; i < count; i += 1) {
    const before = JSON.stringify(host.sessions());
    host.step(stepMs);
    expect(JSON.stringify(host.sessions()), 'every step changes the sessions').not.toBe(before);
    await sleep(150);
  }
}

/** What a host's list becomes after `events` (as the collector applies them), from `base`. */
function replay(base: readonly Session[], events: readonly AgentEvent[]): Session[] {
  const sessions = new Map(base.map((s) => [s.id, s]));
  for (const event of events) {
    if (event.op === 'upsert') sessions.set(event.session.id, event.session);
    else sessions.delete(event.id);
  }
  return [...sessions.values()];
}

/**
 * Waits until the agent's spool on disk, applied to `base` (the truth when everything up to
 * `ackedSeq` was acked), gives `truth`: the agent has read every change and made it durable.
 * Returns the spooled events.
 */
async function spoolHoldsTheTruth(
  spoolDir: string,
  base: readonly Session[],
  ackedSeq: number,
  truth: readonly Session[],
) {
  return vi.waitFor(
    () => {
      const spool = readSpool(spoolDir);
      expect(spool.state.acked).toBe(ackedSeq);
      const pending = spool.events.filter((event) => event.seq > ackedSeq);
      expect(pending.length).toBeGreaterThan(0);
      expect(truthView(replay(base, pending))).toEqual(truthView(truth));
      return pending;
    },
    { timeout: 10_000 },
  );
}

/** The `ack` of each welcome the agent logged, oldest first. */
const welcomeAcks = (agent: AgentProcess) => agent.logged('connected to collector').map((line) => line.ack as number);

describe('agent and collector in steady state', () => {
  it('a churning host streamed as events keeps the farm equal to the truth at every step', async () => {
    const { host, collector, agent, spoolDir } = await rig({ seed: 11 });
    await settlesToTruth(collector, host);
    for (let step = 0; step < 10; step += 1) {
      const before = JSON.stringify(host.sessions());
      host.step();
      expect(JSON.stringify(host.sessions()), 'every step changes the sessions').not.toBe(before);
      await settlesToTruth(collector, host);
    }
    await agentIdle(agent, spoolDir);
    // The steps arrived as events: one snapshot (on connect), and it had nothing to correct.
    expect(
      await collectorCount(collector, 'rasmon_collector_frames_total', { type: 'snapshot', result: 'applied' }),
    ).toBe(1);
    expect(
      await collectorCount(collector, 'rasmon_collector_frames_total', { type: 'events', result: 'applied' }),
    ).toBeGreaterThanOrEqual(10);
    expect(await corrections(collector)).toBe(0);
    expect(await collectorCount(collector, 'rasmon_collector_events_total', { result: 'duplicate' })).toBe(0);
    expect(agent.logged('collector silent')).toEqual([]);
  });
});

describe('collector outage', () => {
  it.each(['SIGTERM', 'SIGKILL'] as const)(
    'the collector stopped for a while (%s) and restarted: no event lost and the farm state equal to the truth',
    async (signal) => {
      const { host, raw, collector, agent, spoolDir } = await rig({ seed: signal === 'SIGTERM' ? 21 : 22 });
      await settlesToTruth(collector, host);
      await agentIdle(agent, spoolDir);
      const ackBefore = readSpool(spoolDir).state.acked;
      const truthBefore = host.sessions();

      collector.signal(signal);
      const exit = await vi.waitFor(() => collector.exited, { timeout: 10_000 });
      if (signal === 'SIGTERM') expect(exit.code).toBe(0);
      else expect(exit.signal).toBe('SIGKILL');
      await agentDisconnected(agent);

      await stepWhileAgentPolls(host, 5);
      await vi.waitFor(
        async () => {
          const scrape = await agent.scrape();
          expect(scrape.value('rasmon_agent_spool_events')).toBeGreaterThan(0);
          expect(scrape.value('rasmon_agent_connected')).toBe(0);
        },
        { timeout: 10_000 },
      );
      const spooled = await spoolHoldsTheTruth(spoolDir, truthBefore, ackBefore, host.sessions());

      const again = await startCollector(raw, { port: collector.port, configPath: collector.configPath });
      await settlesToTruth(again, host);
      await agentIdle(agent, spoolDir);
      // The replayed events alone made the state right: the snapshot sent on connect found nothing to fix.
      expect(await corrections(again)).toBe(0);
      expect(
        await collectorCount(again, 'rasmon_collector_frames_total', { type: 'events', result: 'applied' }),
      ).toBeGreaterThanOrEqual(1);
      expect(await collectorCount(again, 'rasmon_collector_events_total', { result: 'duplicate' })).toBe(0);
      expect(welcomeAcks(agent).at(-1)).toBe(ackBefore);
      const spool = readSpool(spoolDir);
      expect(spool.state.acked).toBe(spool.state.reserved);
      expect(spool.state.acked).toBeGreaterThan(spooled.at(-1)!.seq);
      expect(spool.pending).toEqual([]);
    },
  );

  it(
    'the collector SIGKILLed while the host keeps changing and restarted: the agent resumes from the last applied seq, ' +
      'nothing is applied twice, and the farm equals the truth',
    async () => {
      const { host, raw, collector, agent, spoolDir } = await rig({ seed: 23 });
      await settlesToTruth(collector, host);
      // Steps faster than the agent polls, so frames are in flight when the collector dies.
      for (let i = 0; i < 12; i += 1) {
        host.step();
        await sleep(60);
        if (i === 4) collector.signal('SIGKILL');
      }
      expect((await vi.waitFor(() => collector.exited, { timeout: 10_000 })).signal).toBe('SIGKILL');
      await agentDisconnected(agent);
      const spooled = await vi.waitFor(
        () => {
          const spool = readSpool(spoolDir);
          const pending = spool.events.filter((event) => event.seq > spool.state.acked);
          expect(pending.length).toBeGreaterThan(0);
          return { acked: spool.state.acked, lastSeq: pending.at(-1)!.seq };
        },
        { timeout: 10_000 },
      );
      await expect.poll(() => agent.metric('rasmon_agent_spool_events'), { timeout: 10_000 }).toBeGreaterThan(0);

      const again = await startCollector(raw, { port: collector.port, configPath: collector.configPath });
      await settlesToTruth(again, host);
      await agentIdle(agent, spoolDir);
      expect(await corrections(again)).toBe(0);
      expect(await collectorCount(again, 'rasmon_collector_events_total', { result: 'duplicate' })).toBe(0);
      expect(welcomeAcks(agent).at(-1)).toBeGreaterThanOrEqual(spooled.acked);
      const spool = readSpool(spoolDir);
      expect(spool.state.acked).toBe(spool.state.reserved);
      expect(spool.state.acked).toBeGreaterThan(spooled.lastSeq);
      expect(spool.pending).toEqual([]);
    },
  );

  it('a full spool drops the oldest events, counts and logs it, and the snapshot repairs the state', async () => {
    const { host, raw, collector, agent, spoolDir } = await rig({ seed: 41, spool: { maxBytes: 4096 } });
    await settlesToTruth(collector, host);
    await agentIdle(agent, spoolDir);
    const droppedBefore = (await agent.metric('rasmon_agent_spool_dropped_total')) ?? 0;
    const dropLogsBefore = agent.logged('spool full').length;

    collector.signal('SIGKILL');
    await vi.waitFor(() => collector.exited, { timeout: 10_000 });
    await agentDisconnected(agent);
    // Short steps: each list read brings well under 4 KiB, many of them far more.
    await stepWhileAgentPolls(host, 16, 10_000);
    await expect
      .poll(() => agent.metric('rasmon_agent_spool_dropped_total'), { timeout: 10_000 })
      .toBeGreaterThan(droppedBefore);
    const drops = agent.logged('spool full').slice(dropLogsBefore);
    expect(drops.length).toBeGreaterThan(0);
    expect(drops[0]!.dropped).toBeGreaterThan(0);
    expect(await agent.metric('rasmon_agent_spool_bytes')).toBeLessThanOrEqual(4096);
    expect(readSpool(spoolDir).logBytes).toBeLessThanOrEqual(4096);

    const resyncsBefore = agent.logged('collector asked for a snapshot').length;
    const again = await startCollector(raw, { port: collector.port, configPath: collector.configPath });
    await settlesToTruth(again, host);
    await agentIdle(agent, spoolDir);
    // The gap left by the dropped events was seen and answered with a resync, and a snapshot healed it.
    expect(again.output.join('')).toContain('seq gap: asking for a snapshot');
    expect(
      await collectorCount(again, 'rasmon_collector_frames_total', { type: 'events', result: 'refused' }),
    ).toBeGreaterThanOrEqual(1);
    await expect
      .poll(() => agent.logged('collector asked for a snapshot').length, { timeout: 10_000 })
      .toBeGreaterThan(resyncsBefore);
    await settlesToTruth(again, host);
  });
});

describe('agent killed', () => {
  it('the agent SIGKILLed with unacked events in its spool and restarted replays those events once', async () => {
    const { host, raw, collector, agent, agentConfig, spoolDir } = await rig({ seed: 31 });
    await settlesToTruth(collector, host);
    await agentIdle(agent, spoolDir);
    const ackBefore = readSpool(spoolDir).state.acked;
    const truthBefore = host.sessions();

    collector.signal('SIGKILL');
    await vi.waitFor(() => collector.exited, { timeout: 10_000 });
    await agentDisconnected(agent);
    await stepWhileAgentPolls(host, 4);
    const spooled = await spoolHoldsTheTruth(spoolDir, truthBefore, ackBefore, host.sessions());
    await agent.kill();
    const killed = readSpool(spoolDir);
    expect(killed.logBytes, 'events.log after SIGKILL').toBeGreaterThan(0);
    expect(killed.events.filter((event) => event.seq > ackBefore)).toEqual(spooled);

    const again = await startCollector(raw, { port: collector.port, configPath: collector.configPath });
    expect(await collectorCount(again, 'rasmon_collector_events_total', { result: 'duplicate' })).toBe(0);
    const restarted = await startAgent(agentConfig, { configPath: agent.configPath });
    await settlesToTruth(again, host);
    await agentIdle(restarted, spoolDir);

    // Once: nothing reached the collector twice, and no snapshot had to fix what the events did.
    expect(await corrections(again)).toBe(0);
    expect(await collectorCount(again, 'rasmon_collector_events_total', { result: 'duplicate' })).toBe(0);
    expect(await collectorCount(again, 'rasmon_collector_frames_total', { type: 'events', result: 'duplicate' })).toBe(
      0,
    );
    // Replayed from the spool, on the same stream, resuming after the last ack.
    const after = readSpool(spoolDir);
    expect(after.state.stream).toBe(killed.state.stream);
    expect(restarted.logged('spool recovered')[0]).toMatchObject({ pending: spooled.length, acked: ackBefore });
    expect(welcomeAcks(restarted)).toEqual([ackBefore]);
    expect(after.state.acked).toBe(after.state.reserved);
    expect(after.state.acked).toBeGreaterThan(spooled.at(-1)!.seq);
    expect(after.pending).toEqual([]);
  });
});

describe('agent restarted', () => {
  it('sessions that ended while the agent was down go out as events, so its snapshot corrects nothing', async () => {
    const { host, collector, agent, agentConfig, spoolDir } = await rig({ seed: 47 });
    await settlesToTruth(collector, host);
    await agentIdle(agent, spoolDir);
    await agent.stop();
    // While no agent runs, the host's sessions change: some log off, others log on.
    const before = host.sessions();
    await stepWhileAgentPolls(host, 3);
    expect(host.sessions().filter((s) => !before.some((b) => b.id === s.id)).length).toBeGreaterThan(0);
    expect(before.filter((b) => !host.sessions().some((s) => s.id === b.id)).length).toBeGreaterThan(0);
    const restarted = await startAgent(agentConfig, { configPath: agent.configPath });
    await settlesToTruth(collector, host);
    await agentIdle(restarted, spoolDir);
    expect(await corrections(collector)).toBe(0);
  });

  it('the agent SIGKILLed after polls with events, then sessions end while it is down: the restarted agent sends them as ends', async () => {
    const { host, collector, agent, agentConfig, spoolDir } = await rig({ seed: 53 });
    await settlesToTruth(collector, host);
    // Polls with events after the start, so the list is in the journal's appends, not its first line.
    await stepWhileAgentPolls(host, 2);
    await settlesToTruth(collector, host);
    await agentIdle(agent, spoolDir);
    await agent.kill();
    const before = host.sessions();
    await stepWhileAgentPolls(host, 3);
    const ended = before.filter((b) => !host.sessions().some((s) => s.id === b.id));
    expect(ended.length).toBeGreaterThan(0);
    const restarted = await startAgent(agentConfig, { configPath: agent.configPath });
    await settlesToTruth(collector, host);
    await agentIdle(restarted, spoolDir);
    const sent = readSpool(spoolDir)
      .events.filter((event) => event.op === 'end')
      .map((event) => (event as { id: string }).id);
    for (const session of ended) expect(sent, `an end for ${session.id}`).toContain(session.id);
    expect(await corrections(collector)).toBe(0);
  });
});

describe('connection faults', () => {
  it('a connection cut mid-frame recovers through a reconnect and the farm equals the truth', async () => {
    let proxy: CuttingProxy | undefined;
    const { host, collector, agent, spoolDir } = await rig({
      seed: 51,
      via: async (port) => {
        proxy = await CuttingProxy.start(port);
        onTestFinished(() => proxy!.close());
        return proxy.url;
      },
    });
    await settlesToTruth(collector, host);
    await agentIdle(agent, spoolDir);
    const ackBefore = readSpool(spoolDir).state.acked;
    expect(proxy!.connections).toBe(1);

    // Forty logons at once: one events frame of several KiB, cut in the middle of its first chunk.
    const cutDone = proxy!.cutNextChunk(1024);
    for (let i = 1; i <= 40; i += 1)
      host.sim.logon(`CORP\\Burst${String(i).padStart(2, '0')}`, { kind: i % 3 === 0 ? 'app' : 'desktop' });
    host.write();
    const cut = await vi.waitFor(() => cutDone, { timeout: 15_000 });
    expect(cut.chunkBytes).toBeGreaterThan(1024);
    expect(cut.forwardedBytes).toBeLessThan(cut.chunkBytes);

    await settlesToTruth(collector, host);
    await agentIdle(agent, spoolDir);
    expect(proxy!.connections).toBeGreaterThanOrEqual(2);
    // The torn frame was never applied: the reconnect resumed from the ack before it.
    expect(welcomeAcks(agent)).toEqual([0, ackBefore]);
    const spool = readSpool(spoolDir);
    expect(spool.state.acked).toBe(spool.state.reserved);
    expect(spool.pending).toEqual([]);
    expect(await agent.metric('rasmon_agent_spool_events')).toBe(0);
    expect(await collectorCount(collector, 'rasmon_collector_events_total', { result: 'duplicate' })).toBe(0);
    expect(await corrections(collector)).toBe(0);
  });

  it('a collector that stops answering without closing TCP is detected within two heartbeats and rejoined after it resumes', async () => {
    const { host, collector, agent, spoolDir } = await rig({ seed: 61, collectorExtra: { heartbeatSeconds: 1 } });
    await settlesToTruth(collector, host);
    await agentIdle(agent, spoolDir);
    // Healthy heartbeats do not trip over three intervals.
    await sleep(3000);
    expect(await agent.metric('rasmon_agent_connected')).toBe(1);
    expect(agent.logged('collector silent')).toEqual([]);

    collector.signal('SIGSTOP');
    const stoppedAt = Date.now();
    try {
      await agentDisconnected(agent, 10_000);
      const detectedMs = Date.now() - stoppedAt;
      // Two intervals of 1 s, checked every interval: at most 3 s, plus scheduling slack.
      expect(detectedMs).toBeLessThan(5000);
      expect(agent.logged('collector silent for two heartbeats')).toHaveLength(1);
      await stepWhileAgentPolls(host, 2);
    } finally {
      collector.signal('SIGCONT');
    }
    await expect.poll(() => agent.metric('rasmon_agent_connected'), { timeout: 15_000 }).toBe(1);
    await settlesToTruth(collector, host);
    await agentIdle(agent, spoolDir);
    expect(await corrections(collector)).toBe(0);
  });
});
