/**
 * A simulated agent for the bench's fleet parts (restart, redis-loss): raw `ws`, a hello with its
 * host key, a snapshot after every welcome and whenever the collector asks (`resync`), as the real
 * agent does (agent/src/agent.ts), and reconnects by the agent's own policy (`reconnectDelay` of
 * agent/src/link/reconnect-delay.ts, the function agent/src/link/collector-link.ts calls): a spread
 * delay after 1001, Retry-After after 429, exponential backoff otherwise.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import {
  reconnectDelay,
  parseRetryAfter,
  withinDrainLease,
  DEFAULT_RECONNECT_POLICY,
  type Disconnect,
} from '@rasmon/agent';
import { leaseMs, type CollectorFrame } from '@rasmon/protocol';
import { hostKeyOf } from '../test/support/agent-client.js';

export const farmId = (f: number) => `farm-${f}`;
export const token = (f: number) => `token-${f}`;

/** What a fleet of simulated agents met: upgrade refusals by status, closes by code, failed connects. */
export interface Tally {
  refusals: Map<number, number>;
  closes: Map<number, number>;
  connectErrors: number;
}

export const newTally = (): Tally => ({ refusals: new Map(), closes: new Map(), connectErrors: 0 });

/** "1001: 9998, 1013: 2" of a tally's closes or refusals, by code; "none" when empty. */
export const byKey = (map: Map<number, number>): string =>
  [...map]
    .sort(([a], [b]) => a - b)
    .map(([key, n]) => `${key}: ${n}`)
    .join(', ') || 'none';

export interface SimAgentOptions {
  /** Sessions its host holds (all active desktops of distinct users). */
  sessions: number;
  /** The address a balancer in front would name in X-Forwarded-For, if any. */
  forwardedFor?: string;
  /** A TCP balancer's: the address each connection comes from, and the PROXY header it starts with. */
  proxyFrom?: string;
  proxyHeader?: Buffer;
}

/** One simulated agent: hello, a snapshot when asked, and reconnects as the real agent does. */
export class SimAgent {
  private socket: WebSocket | undefined;
  private attempt = 0;
  private ended: Disconnect = { kind: 'failed' };
  /** When the collector last drained this agent (1001), until the next welcome. */
  private drainedAtMs: number | undefined;
  private heartbeatSeconds = 15;
  private seq = 0;
  welcomedAt = 0;
  stopped = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    private readonly f: number,
    private readonly h: number,
    private readonly tally: Tally,
    private readonly options: SimAgentOptions,
  ) {}

  /** A connection from the balancer's address that starts with the agent's PROXY header. */
  private throughBalancer(): Socket {
    const url = new URL(this.url);
    const socket = netConnect({ host: url.hostname, port: Number(url.port), localAddress: this.options.proxyFrom });
    socket.write(this.options.proxyHeader!);
    return socket;
  }

  /** Connects now; resolves at the first welcome or rejects at the first failure (setup only). */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`${this.url.replace(/^http/, 'ws')}/v1/agent`, ['rasmon.v1'], {
        headers: {
          Authorization: `Bearer ${token(this.f)}`,
          ...(this.options.forwardedFor ? { 'X-Forwarded-For': this.options.forwardedFor } : {}),
        },
        perMessageDeflate: false,
        ...(this.options.proxyHeader ? { createConnection: () => this.throughBalancer() } : {}),
      });
      this.socket = socket;
      this.ended = { kind: 'failed' };
      socket.on('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        this.tally.refusals.set(status, (this.tally.refusals.get(status) ?? 0) + 1);
        this.ended = { kind: 'refused', status, retryAfterMs: parseRetryAfter(res.headers['retry-after']) };
        res.resume();
        socket.terminate();
        reject(new Error(`upgrade refused with ${status}`));
      });
      let opened = false;
      socket.on('error', () => {
        if (!opened && this.ended.kind === 'failed') this.tally.connectErrors += 1;
        reject(new Error('connection error'));
      });
      socket.on('open', () => {
        opened = true;
        socket.send(
          JSON.stringify({
            type: 'hello',
            farm: farmId(this.f),
            host: `rdsh-${this.h}`,
            stream: `stream-${this.f}-${this.h}`,
            hostKey: hostKeyOf(`${this.f}/${this.h}`),
          }),
        );
      });
      socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as CollectorFrame;
        if (frame.type === 'welcome') {
          this.welcomedAt = Date.now();
          this.drainedAtMs = undefined;
          this.heartbeatSeconds = frame.heartbeatSeconds;
          this.seq = Math.max(this.seq, frame.ack);
          // The whole state after every welcome, as the real agent sends it.
          this.sendSnapshot(socket);
          resolve();
        } else if (frame.type === 'resync') {
          this.sendSnapshot(socket);
        }
      });
      socket.on('close', (code) => {
        if (this.socket === socket) this.socket = undefined;
        // Refusals and failed connects are counted above, not again as the 1006 they end with.
        if (opened) this.tally.closes.set(code, (this.tally.closes.get(code) ?? 0) + 1);
        if (code === 1001) {
          this.ended = { kind: 'drained', leaseMs: leaseMs(this.heartbeatSeconds) };
          this.drainedAtMs = Date.now();
        }
        reject(new Error(`closed ${code}`));
        this.scheduleReconnect();
      });
    });
  }

  /** The first connection: hello and its snapshot, so the host holds users the bench must keep. */
  async setUp(): Promise<void> {
    this.stopped = true;
    await this.connect();
    this.stopped = false;
  }

  private sendSnapshot(socket: WebSocket): void {
    this.seq += 1;
    socket.send(JSON.stringify({ type: 'snapshot', seq: this.seq, at: Date.now(), sessions: this.sessions() }));
  }

  private sessions() {
    const count = this.options.sessions;
    return Array.from({ length: count }, (_, i) => ({
      id: String(i + 1),
      user: `corp\\user${this.h * count + i}`,
      admin: false,
      kind: 'desktop',
      via: 'ras',
      state: 'active',
      since: 1_700_000_000_000 + this.h * 100 + i,
    }));
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    // As the agent's link does (agent/src/link/collector-link.ts).
    const cause: Disconnect =
      this.ended.kind !== 'drained' && withinDrainLease(this.drainedAtMs, this.heartbeatSeconds)
        ? { ...this.ended, afterDrain: true }
        : this.ended;
    const plan = reconnectDelay(cause, this.attempt, DEFAULT_RECONNECT_POLICY);
    this.attempt = plan.attempt;
    this.timer = setTimeout(() => void this.connect().catch(() => undefined), plan.delayMs);
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.terminate();
  }
}
