/**
 * A large fleet held by one collector: farms × hosts agents, each connected, said hello and sent a
 * snapshot, then left idle. Measures, with one more agent probing from a process of its own (a
 * one-event frame every 20 ms):
 * its ack latency while the fleet idles through at least two heartbeats, then /metrics latency and
 * size during back-to-back scrapes and the probe's acks meanwhile; and the collector's RSS per idle
 * connection beside a bare `ws` server holding as many connections.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import type { Session } from '@rasmon/protocol';
import { TestAgent, hostKeyOf } from '../test/support/agent-client.js';
import { type RedisServer } from '../test/support/redis-server.js';
import { freePort } from '../test/support/free-port.js';
import { latencySummary, rssKiB, section, sha256, startCollector, type RunningCollector } from './common.js';
import { eachLimited } from '@rasmon/protocol/kit';

export interface FleetOptions {
  farms: number;
  hosts: number;
  sessions: number;
  heartbeatSeconds: number;
  scrapeSeconds: number;
}

const farmId = (f: number) => `farm-${f}`;
const token = (f: number) => `token-${f}`;

function hostSessions(f: number, h: number, count: number): Session[] {
  return Array.from({ length: count }, (_, i) => ({
    id: String(i + 1),
    user: `corp\\user${(h * count + i) % 3000}`,
    admin: i === 0,
    kind: i % 5 === 4 ? 'app' : 'desktop',
    via: i % 7 === 6 ? 'rdp' : 'ras',
    state: i % 4 === 3 ? 'disconnected' : 'active',
    since: 1_700_000_000_000 + f * 1_000_000 + h * 100 + i,
  }));
}

interface Timed {
  latencies: number[];
  worstPerSecond: number[];
}

/** One agent sending a one-event frame every 20 ms and timing each ack, in its own process (bench/probe.ts). */
export class Probe {
  private constructor(private readonly child: ChildProcess) {}

  /** Connects to `url` as host `probe` of farm `farm` (the fleet's first by default). */
  static async connect(url: string, tokenText = token(0), farm = farmId(0)): Promise<Probe> {
    const script = new URL('./probe.js', import.meta.url).pathname;
    const child = fork(script, [url, tokenText, farm], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`the probe exited with ${String(code)} before it was ready`)));
    });
    child.removeAllListeners('exit');
    return new Probe(child);
  }

  start(): void {
    this.child.send({ type: 'start' });
  }

  /** Stops sending; resolves with what was timed since start, once the acks due have come. */
  stop(): Promise<Timed> {
    const timed = new Promise<Timed>((resolve) => this.child.once('message', (message) => resolve(message as Timed)));
    this.child.send({ type: 'stop' });
    return timed;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.disconnect();
    await exited;
  }
}

async function connectFleet(collector: RunningCollector, options: FleetOptions): Promise<WebSocket[]> {
  const slots = Array.from({ length: options.farms * options.hosts }, (_, i) => i);
  const sockets: WebSocket[] = [];
  await eachLimited(slots, 100, async (i) => {
    const f = i % options.farms;
    const h = Math.floor(i / options.farms);
    const agent = await TestAgent.connect(collector.url, token(f));
    await agent.hello(farmId(f), `rdsh-${h}`, `stream-${f}-${h}`, undefined, hostKeyOf(`${f}/${h}`));
    await agent.snapshot(1, hostSessions(f, h, options.sessions));
    agent.received.length = 0;
    sockets.push(agent.socket);
  });
  return sockets;
}

async function closeAll(sockets: WebSocket[]): Promise<void> {
  await eachLimited(sockets, 500, async (socket) => {
    if (socket.readyState !== WebSocket.OPEN) return;
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.close(1000);
    await Promise.race([closed, sleep(5000)]);
  });
}

/** A bare ws server (echo) in its own process: what N idle WebSocket connections cost at the least. */
async function bareWsPerConnection(count: number): Promise<number> {
  const port = await freePort();
  const script = `
    import { WebSocketServer } from 'ws';
    const wss = new WebSocketServer({ host: '127.0.0.1', port: ${port}, perMessageDeflate: false, clientTracking: false });
    wss.on('connection', (ws) => ws.on('message', (data) => ws.send(data)));
    wss.on('listening', () => console.log('ready'));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('../../../', import.meta.url).pathname,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  await sleep(500);
  const before = rssKiB(child.pid!);
  const sockets: WebSocket[] = [];
  await eachLimited(
    Array.from({ length: count }, (_, i) => i),
    100,
    async () => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
      await new Promise((resolve, reject) => {
        socket.once('open', resolve);
        socket.once('error', reject);
      });
      sockets.push(socket);
    },
  );
  await sleep(1000);
  const after = rssKiB(child.pid!);
  await closeAll(sockets);
  child.kill('SIGTERM');
  return (after - before) / count;
}

interface Scraped {
  latencies: number[];
  bytes: number;
  /**
   * The collector's own event-loop delay (prom-client's monitorEventLoopDelay, reset by each
   * scrape), worst since the scrape before: its stalls apart from the bench's.
   */
  collectorLagMax: number[];
}

/** GETs `url` back to back for `seconds` in a child process; what each scrape took and found. */
async function scrapeBackToBack(url: string, seconds: number): Promise<Scraped> {
  const script = `
    const url = ${JSON.stringify(url)};
    const deadline = Date.now() + ${seconds * 1000};
    const out = { latencies: [], bytes: 0, collectorLagMax: [] };
    while (Date.now() < deadline) {
      const started = performance.now();
      const body = await fetch(url).then((r) => r.text());
      out.latencies.push(performance.now() - started);
      out.bytes = Buffer.byteLength(body);
      const lag = /^nodejs_eventloop_lag_max_seconds (\\S+)$/m.exec(body);
      // The first covers the time before the scrapes began.
      if (lag && out.latencies.length > 1) out.collectorLagMax.push(Number(lag[1]) * 1000);
    }
    console.log(JSON.stringify(out));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`the scraping process exited with ${String(code)}`);
  return JSON.parse(output) as Scraped;
}

/** The collector's apply-duration histogram: cumulative count per upper bound (seconds, as text). */
async function applyBuckets(url: string): Promise<Map<string, number>> {
  const body = await fetch(`${url}/metrics`).then((r) => r.text());
  const buckets = new Map<string, number>();
  for (const [, le, count] of body.matchAll(/^rasmon_collector_apply_duration_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm))
    buckets.set(le!, Number(count));
  return buckets;
}

/** "≤5 ms 480, ≤10 ms 9, …": how many applies fell in each bucket between two readings. */
function bucketDelta(before: Map<string, number>, after: Map<string, number>): string {
  let below = 0;
  const parts: string[] = [];
  for (const [le, count] of after) {
    const inBucket = count - (before.get(le) ?? 0) - below;
    below += inBucket;
    if (inBucket > 0) parts.push(`${le === '+Inf' ? '>1 s' : `≤${Number(le) * 1000} ms`} ${inBucket}`);
  }
  return parts.join(', ') || 'none';
}

export async function runFleet(redis: RedisServer, options: FleetOptions): Promise<void> {
  const { farms, hosts, sessions, heartbeatSeconds, scrapeSeconds } = options;
  const count = farms * hosts;
  section(`fleet: ${farms} farms x ${hosts} hosts x ${sessions} sessions, heartbeat ${heartbeatSeconds} s`);
  const client = redis.client();
  await client.flushall();
  const collector = await startCollector(
    {
      redis: { url: redis.url, prefix: 'fleet' },
      heartbeatSeconds,
      // Every simulated agent comes from 127.0.0.1: the per-address upgrade limit would refuse them.
      limits: { upgradesPerSecondPerAddress: 100_000, upgradeBurstPerAddress: 1_000_000 },
      farms: Array.from({ length: farms }, (_, f) => ({
        id: farmId(f),
        seats: hosts * sessions,
        license: 'primary',
        expires: '2030-01-01T00:00:00Z',
        agentTokensSha256: [sha256(token(f))],
      })),
    },
    await freePort(),
  );
  let sockets: WebSocket[] = [];
  let probe: Probe | undefined;
  try {
    await sleep(1000);
    const rssBefore = rssKiB(collector.process.pid!);
    const t0 = Date.now();
    sockets = await connectFleet(collector, options);
    console.log(
      `${count} agents connected, said hello and sent a snapshot in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    probe = await Probe.connect(collector.url);

    // Idle: the probe alone sends; everyone else only answers pings and has its lease renewed.
    const idleMs = Math.round(2.2 * heartbeatSeconds * 1000);
    probe.start();
    await sleep(idleMs);
    const idle = await probe.stop();
    console.log(`idle fleet, probe ack: ${latencySummary(idle.latencies)}`);
    console.log(`idle fleet, probe's worst ack per second (ms): ${idle.worstPerSecond.join(' ')}`);
    const rssAfter = rssKiB(collector.process.pid!);
    console.log(
      `collector RSS: ${(rssBefore / 1024).toFixed(0)} MiB before, ${(rssAfter / 1024).toFixed(0)} MiB with ${count} connections = ${((rssAfter - rssBefore) / count).toFixed(1)} KiB per connection`,
    );

    // Back-to-back scrapes with the probe running, from another process as Prometheus would scrape:
    // reading a 2.5 MB body here would stall the probe's own event loop and count against the collector.
    const appliesBefore = await applyBuckets(collector.url);
    probe.start();
    const scraped = await scrapeBackToBack(`${collector.url}/metrics`, scrapeSeconds);
    const during = await probe.stop();
    const { latencies: scrapes, bytes, collectorLagMax } = scraped;
    console.log(`/metrics back to back: ${latencySummary(scrapes)}, ${(bytes / 1e6).toFixed(2)} MB`);
    console.log(`probe ack during scrapes: ${latencySummary(during.latencies)}`);
    console.log(`collector RSS after the scrapes: ${(rssKiB(collector.process.pid!) / 1024).toFixed(0)} MiB`);
    console.log(
      `collector event-loop delay during scrapes, worst since the scrape before: ${latencySummary(collectorLagMax)}`,
    );
    console.log(
      `collector's apply of the probe's frames during scrapes: ${bucketDelta(appliesBefore, await applyBuckets(collector.url))}`,
    );
  } finally {
    await probe?.close();
    await closeAll(sockets);
    client.disconnect();
    await collector.stop();
  }
  const bare = await bareWsPerConnection(count);
  console.log(`bare ws server: ${bare.toFixed(1)} KiB per idle connection`);
}
