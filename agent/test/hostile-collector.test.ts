/**
 * The agent against a collector that lies, floods or stalls: a real WebSocket server on loopback,
 * written here, plays the collector; the agent is the real one with a real spool directory. The
 * agent must neither crash nor wedge nor lose an event uncounted, and what it logs stays small.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { SUBPROTOCOL, type AgentEvent, type Session } from '@rasmon/protocol';
import { session } from './support/sessions.js';
import { Agent } from '../src/agent.js';
import { AgentMetrics } from '../src/metrics.js';
import type { SessionSource } from '../src/session/source.js';

const LIMITS = { maxFrameBytes: 1_048_576, maxEvents: 1000, maxSessions: 2000 };

interface Conn {
  socket: WebSocket;
  hello: Record<string, unknown> | undefined;
  frames: Array<Record<string, unknown>>;
  openedAt: number;
  closed: Promise<number>;
}

/** A WebSocket server speaking just enough of the collector's side; each test scripts the rest. */
class FakeCollector {
  readonly conns: Conn[] = [];
  private constructor(
    readonly server: WebSocketServer,
    readonly url: string,
  ) {}

  static async start(onHello: (conn: Conn) => void): Promise<FakeCollector> {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => SUBPROTOCOL });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const fake = new FakeCollector(server, `ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('connection', (socket) => {
      let closedWith!: (code: number) => void;
      const conn: Conn = {
        socket,
        hello: undefined,
        frames: [],
        openedAt: Date.now(),
        closed: new Promise((resolve) => (closedWith = resolve)),
      };
      fake.conns.push(conn);
      socket.on('error', () => undefined);
      socket.on('close', (code) => closedWith(code));
      socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as Record<string, unknown>;
        if (frame.type === 'hello') {
          conn.hello = frame;
          onHello(conn);
        } else {
          conn.frames.push(frame);
        }
      });
    });
    return fake;
  }

  snapshots(conn: Conn): Array<Record<string, unknown>> {
    return conn.frames.filter((frame) => frame.type === 'snapshot');
  }

  events(conn: Conn): AgentEvent[] {
    return conn.frames.filter((frame) => frame.type === 'events').flatMap((frame) => frame.events as AgentEvent[]);
  }

  async stop(): Promise<void> {
    for (const client of this.server.clients) client.terminate();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const welcome = (ack: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ type: 'welcome', ack, heartbeatSeconds: 15, limits: LIMITS, ...extra });

/** A session source the test sets directly. */
class ListSource implements SessionSource {
  readonly name = 'list';
  sessions: Session[] = [];
  unknownAdmins = 0;
  async list(): Promise<Session[]> {
    return this.sessions.map((entry) => ({ ...entry }));
  }
  adminUnknown(): number {
    return this.unknownAdmins;
  }
}

interface Rig {
  agent: Agent;
  source: ListSource;
  metrics: AgentMetrics;
  spoolDir: string;
  /** Every log line the agent wrote, as text. */
  logLines: string[];
}

async function startAgent(
  url: string,
  options: {
    sessions?: Session[];
    backoff?: { initialMs: number; maxMs: number };
    drainSpreadMs?: number;
    welcomeTimeoutMs?: number;
    resyncMinIntervalMs?: number;
  } = {},
): Promise<Rig> {
  const spoolDir = mkdtempSync(join(tmpdir(), 'rasmon-hostile-'));
  onTestFinished(() => rmSync(spoolDir, { recursive: true, force: true }));
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  const source = new ListSource();
  source.sessions = options.sessions ?? [];
  const metrics = new AgentMetrics();
  const agent = new Agent({
    source,
    spool: { dir: spoolDir, maxBytes: 1 << 20 },
    link: {
      url,
      token: 'secret-token',
      farm: 'farm-a',
      host: 'rdsh-01',
      agent: 'test/1',
      backoff: options.backoff ?? { initialMs: 20, maxMs: 200 },
      welcomeTimeoutMs: options.welcomeTimeoutMs ?? 10_000,
      ...(options.drainSpreadMs === undefined ? {} : { drainSpreadMs: options.drainSpreadMs }),
    },
    pollIntervalSeconds: 0.05,
    snapshotIntervalSeconds: 600,
    log: pino({ level: 'debug' }, sink),
    metrics,
    ...(options.resyncMinIntervalMs === undefined ? {} : { resyncMinIntervalMs: options.resyncMinIntervalMs }),
  });
  await agent.start();
  onTestFinished(() => agent.stop());
  return { agent, source, metrics, spoolDir, logLines };
}

async function fake(onHello: (conn: Conn) => void): Promise<FakeCollector> {
  const collector = await FakeCollector.start(onHello);
  onTestFinished(() => collector.stop());
  return collector;
}

const state = (rig: Rig) =>
  JSON.parse(readFileSync(join(rig.spoolDir, 'state.json'), 'utf8')) as { stream: string; acked: number };
const dropped = (rig: Rig) => Promise.resolve(rig.metrics.spoolDropped.value);
const logBytes = (rig: Rig) => rig.logLines.reduce((sum, line) => sum + line.length, 0);

describe('an agent that distrusts the wire', () => {
  for (const [what, frame] of [
    ['null', 'null'],
    ['a list', '[]'],
    ['not JSON', '{"type":'],
    ['an ack whose seq is text', '{"type":"ack","seq":"12"}'],
    ['an ack with a negative seq', '{"type":"ack","seq":-1}'],
    [
      'a welcome with a heartbeat of 1e12 s',
      JSON.stringify({ type: 'welcome', ack: 0, heartbeatSeconds: 1e12, limits: LIMITS }),
    ],
    [
      'a welcome with a frame limit of 1 byte',
      JSON.stringify({ type: 'welcome', ack: 0, heartbeatSeconds: 15, limits: { ...LIMITS, maxFrameBytes: 1 } }),
    ],
  ] as const) {
    it(`${what} from the collector is a protocol error: disconnect, nothing saved, no crash`, async () => {
      let sendBad = true;
      const collector = await fake((conn) => {
        if (sendBad) {
          sendBad = false;
          // The bad frame may come before or after a welcome; both are refused.
          if (frame.startsWith('{"type":"ack"')) conn.socket.send(welcome(0));
          conn.socket.send(frame);
        } else {
          conn.socket.send(welcome(0));
        }
      });
      const rig = await startAgent(collector.url, { sessions: [session('1')] });
      await vi.waitFor(() => expect(collector.conns.length).toBeGreaterThanOrEqual(2), { timeout: 15_000 });
      expect(await collector.conns[0]!.closed).toBe(1002);
      expect(state(rig).acked).toBe(0);
      // The next, honest connection gets the events and the snapshot.
      const honest = collector.conns[1]!;
      await vi.waitFor(() => expect(collector.snapshots(honest)).toHaveLength(1), { timeout: 15_000 });
      expect(collector.events(honest).map((event) => event.seq)).toEqual([1]);
    });
  }

  for (const ack of [Number.MAX_SAFE_INTEGER, 100_001]) {
    it(`an ack for seq ${ack}, above any seq sent, disconnects and saves nothing; the events stay and go out again`, async () => {
      let lie = true;
      const collector = await fake((conn) => {
        conn.socket.send(welcome(0));
        conn.socket.on('message', (data) => {
          const frame = JSON.parse(data.toString()) as { type: string; seq?: number };
          if (frame.type !== 'snapshot') return;
          if (lie) {
            lie = false;
            conn.socket.send(JSON.stringify({ type: 'ack', seq: ack }));
          } else {
            conn.socket.send(JSON.stringify({ type: 'ack', seq: frame.seq }));
          }
        });
      });
      const rig = await startAgent(collector.url, { sessions: [session('1'), session('2')] });
      await vi.waitFor(() => expect(collector.conns.length).toBeGreaterThanOrEqual(2), { timeout: 15_000 });
      expect(await collector.conns[0]!.closed).toBe(1002);
      // Honest: everything acked, the spool empties, nothing dropped.
      await vi.waitFor(() => expect(rig.agent.spoolState.depth).toBe(0), { timeout: 15_000 });
      expect(collector.events(collector.conns[1]!).map((event) => event.seq)).toEqual([1, 2]);
      expect(state(rig).acked).toBeLessThan(100);
      expect(await dropped(rig)).toBe(0);
      // New events still get fresh seqs.
      rig.source.sessions = [session('1'), session('2'), session('3')];
      await vi.waitFor(() => expect(collector.events(collector.conns[1]!).at(-1)?.seq).toBeGreaterThan(3), {
        timeout: 15_000,
      });
    });
  }

  it('a welcome that acks a seq never handed out starts a new stream: the pending events go out again under it, none lost', async () => {
    const collector = await fake((conn) => {
      const first = collector.conns.length === 1;
      conn.socket.send(welcome(first ? 5_000_000 : 0));
      conn.socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as { type: string; seq?: number };
        if (frame.type === 'snapshot') conn.socket.send(JSON.stringify({ type: 'ack', seq: frame.seq }));
      });
    });
    const rig = await startAgent(collector.url, { sessions: [session('1'), session('2')] });
    const before = rig.agent.spoolState.stream;
    await vi.waitFor(() => expect(collector.conns.length).toBeGreaterThanOrEqual(2), { timeout: 15_000 });
    const second = collector.conns[1]!;
    await vi.waitFor(() => expect(second.hello).toBeDefined(), { timeout: 15_000 });
    expect(second.hello!.stream).not.toBe(before);
    await vi.waitFor(() => expect(rig.agent.spoolState.depth).toBe(0), { timeout: 15_000 });
    expect(collector.events(second).map((event) => (event.op === 'upsert' ? event.session.id : event.id))).toEqual([
      '1',
      '2',
    ]);
    expect(collector.events(second).map((event) => event.seq)).toEqual([1, 2]);
    expect(await dropped(rig)).toBe(0);
  });

  it('a storm of a thousand resyncs is answered by one snapshot at a time', async () => {
    const collector = await fake((conn) => {
      conn.socket.send(welcome(0));
      let acked = false;
      conn.socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as { type: string; seq?: number };
        if (frame.type !== 'snapshot' || acked) return;
        // Ack the first snapshot only, after a storm: one more snapshot is due, and no more.
        acked = true;
        for (let i = 0; i < 1000; i += 1) conn.socket.send('{"type":"resync"}');
        conn.socket.send(JSON.stringify({ type: 'ack', seq: frame.seq }));
        for (let i = 0; i < 1000; i += 1) conn.socket.send('{"type":"resync"}');
      });
    });
    const rig = await startAgent(collector.url, { sessions: [session('1')], resyncMinIntervalMs: 50 });
    await vi.waitFor(() => expect(collector.conns[0] && collector.snapshots(collector.conns[0])).toHaveLength(2), {
      timeout: 15_000,
    });
    // It is still in flight (never acked): the rest of the storm waits for it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(collector.snapshots(collector.conns[0]!)).toHaveLength(2);
    expect(collector.conns).toHaveLength(1);
    // Asked for is logged once per wait, not once per resync.
    expect(rig.logLines.filter((line) => line.includes('asked for a snapshot')).length).toBeLessThanOrEqual(2);
  });

  it("exports the source's sessions of unknown admin status after each poll", async () => {
    const collector = await fake((conn) => conn.socket.send(welcome(0)));
    const rig = await startAgent(collector.url);
    rig.source.unknownAdmins = 2;
    await vi.waitFor(() => expect(rig.metrics.adminUnknown.value).toBe(2), { timeout: 15_000 });
    rig.source.unknownAdmins = 0;
    await vi.waitFor(() => expect(rig.metrics.adminUnknown.value).toBe(0), { timeout: 15_000 });
  });

  it('a second welcome on one connection is a protocol error', async () => {
    const collector = await fake((conn) => {
      conn.socket.send(welcome(0));
      if (collector.conns.length === 1) conn.socket.send(welcome(0));
    });
    await startAgent(collector.url, { sessions: [session('1')] });
    await vi.waitFor(() => expect(collector.conns.length).toBeGreaterThanOrEqual(2), { timeout: 15_000 });
    expect(await collector.conns[0]!.closed).toBe(1002);
    expect(collector.snapshots(collector.conns[0]!).length).toBeLessThanOrEqual(1);
  });

  it('refuses a frame over 64 KiB (1009) and logs none of it', async () => {
    const payload = JSON.stringify({ type: 'x'.repeat(1024), junk: 'CORP\\secret-user '.repeat(60_000) });
    const collector = await fake((conn) => {
      conn.socket.send(welcome(0));
      if (collector.conns.length === 1) conn.socket.send(payload);
    });
    const rig = await startAgent(collector.url);
    await vi.waitFor(() => expect(collector.conns.length).toBeGreaterThanOrEqual(2), { timeout: 15_000 });
    expect(await collector.conns[0]!.closed).toBe(1009);
    expect(rig.logLines.join('')).not.toContain('secret-user');
    expect(logBytes(rig)).toBeLessThan(20_000);
  });

  it('logs an unknown frame type once per connection, cut short, and ignores it', async () => {
    const collector = await fake((conn) => {
      conn.socket.send(welcome(0));
      // The first connection only: the agent's reconnect after the close would log its own line.
      if (conn !== collector.conns[0]) return;
      for (let i = 0; i < 200; i += 1)
        conn.socket.send(JSON.stringify({ type: `future-${'y'.repeat(20_000)}`, data: 'z'.repeat(20_000) }));
      conn.socket.send(JSON.stringify({ type: 'error', code: 'c'.repeat(10_000), message: 'm'.repeat(40_000) }));
      conn.socket.close(1008);
    });
    const rig = await startAgent(collector.url);
    await vi.waitFor(
      () => expect(rig.logLines.some((line) => line.includes('collector closed the connection'))).toBe(true),
      { timeout: 15_000 },
    );
    const unknown = rig.logLines.filter((line) => line.includes('does not know'));
    expect(unknown).toHaveLength(1);
    expect(unknown[0]!.length).toBeLessThan(500);
    for (const line of rig.logLines) expect(line.length).toBeLessThan(1000);
  });

  it('drops a connection that brings no welcome, and keeps trying', async () => {
    const collector = await fake((conn) => {
      if (collector.conns.length >= 3) conn.socket.send(welcome(0));
    });
    await startAgent(collector.url, { sessions: [session('1')], welcomeTimeoutMs: 200 });
    await vi.waitFor(() => expect(collector.conns.length).toBeGreaterThanOrEqual(3), { timeout: 15_000 });
    await collector.conns[0]!.closed;
    await vi.waitFor(() => expect(collector.snapshots(collector.conns[2]!)).toHaveLength(1), { timeout: 15_000 });
  });

  it('backs off further at every connection that fails soon after its welcome', async () => {
    const collector = await fake((conn) => {
      conn.socket.send(welcome(0));
      setTimeout(() => conn.socket.close(1013, 'try again later'), 10);
    });
    // Delays are at least half their ceiling: 20·2^n ms, so the sixth wait is at least 320 ms.
    await startAgent(collector.url, { sessions: [session('1')], backoff: { initialMs: 20, maxMs: 5000 } });
    await vi.waitFor(() => expect(collector.conns.length).toBeGreaterThanOrEqual(7), { timeout: 10_000 });
    const gap = collector.conns[6]!.openedAt - collector.conns[5]!.openedAt;
    expect(gap).toBeGreaterThanOrEqual(300);
  });

  it('drops and counts an event that can never fit a frame, and the rest go on', async () => {
    // 4 KiB frames (the smallest a collector may announce) and an event escaped to over 6 KiB.
    const small = { ...LIMITS, maxFrameBytes: 4096 };
    const collector = await fake((conn) => {
      conn.socket.send(welcome(0, { limits: small }));
      conn.socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as { type: string; seq?: number; events?: AgentEvent[] };
        const seq = frame.type === 'snapshot' ? frame.seq : frame.events?.at(-1)?.seq;
        if (seq !== undefined) conn.socket.send(JSON.stringify({ type: 'ack', seq }));
      });
    });
    const huge = session('huge', {
      client: { name: '\u0001'.repeat(256), address: '\u0002'.repeat(256) },
      user: `CORP\\${'\u0003'.repeat(250)}`,
    });
    const rig = await startAgent(collector.url, { sessions: [session('1'), huge, session('2')] });
    await vi.waitFor(async () => expect(await dropped(rig)).toBe(1), { timeout: 15_000 });
    await vi.waitFor(() => expect(rig.agent.spoolState.depth).toBe(0), { timeout: 15_000 });
    const ids = collector
      .events(collector.conns[0]!)
      .map((event) => (event.op === 'upsert' ? event.session.id : event.id));
    expect(ids).toEqual(['1', '2']);
    expect(collector.conns).toHaveLength(1);
  });

  it('refuses a snapshot over the frame limit with a clear error instead of reconnecting in a loop', async () => {
    const small = { ...LIMITS, maxFrameBytes: 4096 };
    const collector = await fake((conn) => conn.socket.send(welcome(0, { limits: small })));
    const sessions = Array.from({ length: 120 }, (_, i) => session(String(i)));
    const rig = await startAgent(collector.url, { sessions });
    await vi.waitFor(
      () => expect(rig.logLines.some((line) => line.includes('snapshot larger than the collector accepts'))).toBe(true),
      {
        timeout: 15_000,
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(collector.conns).toHaveLength(1);
    expect(collector.snapshots(collector.conns[0]!)).toHaveLength(0);
    // The events themselves go out, in frames within the limit.
    await vi.waitFor(() => expect(collector.events(collector.conns[0]!)).toHaveLength(120), { timeout: 15_000 });
  });

  // A ten-minute backoff: had the agent used it, neither reconnect would come within the test.
  const LONG_BACKOFF = { initialMs: 600_000, maxMs: 600_000 };

  it('after a drain (1001) reconnects within the spread window, not after its backoff', async () => {
    const collector = await fake((conn) => {
      conn.socket.send(welcome(0));
      if (collector.conns.length === 1) setTimeout(() => conn.socket.close(1001, 'collector shutting down'), 50);
    });
    await startAgent(collector.url, { sessions: [session('1')], backoff: LONG_BACKOFF, drainSpreadMs: 300 });
    await vi.waitFor(() => expect(collector.conns.length).toBe(2), { timeout: 15_000 });
    await vi.waitFor(() => expect(collector.snapshots(collector.conns[1]!)).toHaveLength(1), { timeout: 15_000 });
  });

  it('after a 429 waits for its Retry-After, not its backoff, and gets in', async () => {
    const wss = new WebSocketServer({ noServer: true, handleProtocols: () => SUBPROTOCOL });
    const welcomed: string[] = [];
    wss.on('connection', (socket) => {
      socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as { type: string };
        if (frame.type !== 'hello') return;
        welcomed.push(frame.type);
        socket.send(welcome(0));
      });
    });
    let upgrades = 0;
    const server = createServer();
    server.on('upgrade', (req, socket, head) => {
      upgrades += 1;
      if (upgrades === 1) {
        socket.end(
          'HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
        );
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise((resolve) => server.close(resolve));
    });
    const rig = await startAgent(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, {
      sessions: [session('1')],
      backoff: LONG_BACKOFF,
    });
    await vi.waitFor(() => expect(welcomed).toEqual(['hello']), { timeout: 15_000 });
    expect(upgrades).toBe(2);
    expect(rig.logLines.join('')).toMatch(/"status":429,"retryAfterMs":0/);
  });
});
