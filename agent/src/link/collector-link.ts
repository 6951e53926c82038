/**
 * The agent's WebSocket to the collector: hello and welcome, acks, resync, its own heartbeat (a
 * collector silent for two intervals is dropped), and reconnects by reconnect-delay.ts: spread over
 * 15 s after a drain (1001), after a 429's `Retry-After`, else with exponential backoff and jitter
 * (at least a minute after `superseded`). What to send is the agent's business; the link tells it
 * when the collector is ready for frames.
 *
 * The link distrusts the wire: every frame is validated, incoming frames are limited in size, a
 * welcome must come within a few seconds and only once, an ack above the highest seq sent is a
 * protocol error (the connection is dropped and nothing is saved), and the backoff starts again
 * only after a stretch of healthy running, so a collector that fails right after its welcome is
 * not retried at the initial delay forever. Nothing a collector sends is logged at length.
 */
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import {
  AGENT_PATH,
  CloseCode,
  DEFAULT_LIMITS,
  leaseMs,
  MAX_COLLECTOR_FRAME_BYTES,
  silenceLimitMs,
  SUBPROTOCOL,
  parseCollectorFrame,
  type AckFrame,
  type CollectorFrame,
  type Limits,
} from '@rasmon/protocol';
import type { Logger } from 'pino';
import { explainConnectError } from './connect-error.js';
import {
  DEFAULT_RECONNECT_POLICY,
  parseRetryAfter,
  reconnectDelay,
  withinDrainLease,
  type Disconnect,
} from './reconnect-delay.js';

export interface LinkOptions {
  /** `ws://` or `wss://` address of the collector; `/v1/agent` is added when no path is given. */
  url: string;
  token: string;
  /** PEM of the CA that signed the collector's certificate (wss). */
  ca?: Buffer;
  /** PEM of a client certificate and key, when the collector requires one. */
  cert?: Buffer;
  key?: Buffer;
  farm: string;
  host: string;
  /** The host key the hello carries (host-key.ts); never logged. Left out, the hello carries none. */
  hostKey?: string;
  stream: string;
  agent: string;
  log: Logger;
  backoff?: { initialMs: number; maxMs: number };
  /** After the collector closes with 1001 (a drain), reconnect after a uniform random delay below this (default 15 s). */
  drainSpreadMs?: number;
  /** Wait at least this long after `superseded` (docs/design.md §5: a minute). */
  supersededDelayMs?: number;
  /** Heartbeat before the collector's welcome says otherwise. */
  heartbeatSeconds?: number;
  /** A connection with no welcome this long after it opened is dropped (default 10 s). */
  welcomeTimeoutMs?: number;
  /** The backoff starts again from its initial delay only after a connection stayed up this long (default 60 s). */
  healthyAfterMs?: number;
}

export interface LinkEvents {
  /** Listeners may refuse the welcome with `refuse()` before anything is sent. */
  welcome: [ack: number];
  ack: [frame: AckFrame];
  resync: [];
  down: [];
  /** The upgrade was answered with this HTTP status instead of a WebSocket (401: token refused). */
  refused: [status: number];
  /** The collector closed the connection with an error frame: its code and message, cut to a loggable length. */
  rejected: [code: string, message: string];
}

/** A string from the wire, cut to a length that is safe to log. */
export function clip(text: string, max = 200): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} chars)`;
}

/** The full URL of the agent endpoint. */
export function agentUrl(base: string): string {
  const url = new URL(base);
  if (url.pathname === '/' || url.pathname === '') url.pathname = AGENT_PATH;
  return url.toString();
}

export class CollectorLink extends EventEmitter<LinkEvents> {
  private socket: WebSocket | undefined;
  private welcomed = false;
  /** This connection got its welcome (it may have been dropped since). */
  private hadWelcome = false;
  private stopped = false;
  private attempt = 0;
  private nextDelayFloorMs = 0;
  /** When the collector last drained this connection (1001), until the next welcome. */
  private drainedAtMs: number | undefined;
  /** The heartbeat the last welcome gave: the collector's leases are 3 × this. */
  private welcomeHeartbeatSeconds = 15;
  /** Why the current connection ended, when it was not a plain failure. */
  private ended: Disconnect = { kind: 'failed' };
  private retryTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private welcomeTimer: NodeJS.Timeout | undefined;
  private healthyTimer: NodeJS.Timeout | undefined;
  private lastHeard = 0;
  /** Highest seq sent on this connection, or the welcome's ack: no ack may go above it. */
  private sentUpTo = 0;
  private unknownFrames = 0;
  private serverLimits: Limits = DEFAULT_LIMITS;
  private serverFeatures: readonly string[] = [];
  lastAckAt: number | undefined;

  private stream: string;

  constructor(private readonly options: LinkOptions) {
    super();
    this.stream = options.stream;
  }

  /** The stream the next hello names (after the spool started a new one). */
  setStream(stream: string): void {
    this.stream = stream;
  }

  /** Connected and welcomed: frames may be sent. */
  get ready(): boolean {
    return this.welcomed && this.socket?.readyState === WebSocket.OPEN;
  }

  get limits(): Limits {
    return this.serverLimits;
  }

  /** The optional messages the collector of this connection understands (its welcome's `features`). */
  get features(): readonly string[] {
    return this.serverFeatures;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Closes the connection (1000) and stops reconnecting. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeat);
    const socket = this.socket;
    if (!socket || socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.close(1000, 'agent stopping');
      setTimeout(() => {
        socket.terminate();
        resolve();
      }, 2000).unref();
    });
  }

  /**
   * Sends one frame whose highest seq is `upTo`; false when not connected (it stays in the spool
   * and goes after reconnecting).
   */
  send(frame: object, upTo: number): boolean {
    if (!this.ready) return false;
    this.socket!.send(JSON.stringify(frame));
    this.sentUpTo = Math.max(this.sentUpTo, upTo);
    return true;
  }

  /**
   * Drops the connection as a protocol error: what the collector sent is not acted on, and the
   * next attempt waits out the backoff.
   */
  refuse(problem: string): void {
    const socket = this.socket;
    this.welcomed = false;
    if (!socket || socket.readyState === WebSocket.CLOSED || socket.readyState === WebSocket.CLOSING) return;
    this.options.log.error({ problem: clip(problem) }, 'protocol error from the collector: dropping the connection');
    socket.close(1002, 'protocol error');
    // A peer that does not finish the closing handshake is not waited for.
    setTimeout(() => socket.terminate(), 2000).unref();
  }

  private connect(): void {
    if (this.stopped) return;
    const { log } = this.options;
    const socket = new WebSocket(agentUrl(this.options.url), [SUBPROTOCOL], {
      headers: { Authorization: `Bearer ${this.options.token}` },
      ...(this.options.ca ? { ca: this.options.ca } : {}),
      ...(this.options.cert ? { cert: this.options.cert } : {}),
      ...(this.options.key ? { key: this.options.key } : {}),
      handshakeTimeout: 10_000,
      perMessageDeflate: false,
      maxPayload: MAX_COLLECTOR_FRAME_BYTES,
    });
    this.socket = socket;
    this.welcomed = false;
    this.hadWelcome = false;
    this.sentUpTo = 0;
    this.unknownFrames = 0;
    this.ended = { kind: 'failed' };
    socket.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
      // A busy collector (429) is routine after a restart behind one balancer address: not an error.
      const level = status === 429 ? 'warn' : 'error';
      log[level](
        { status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
        status === 401 ? 'collector refused the token (401)' : 'collector refused the connection',
      );
      this.ended = { kind: 'refused', status, retryAfterMs };
      res.resume();
      socket.terminate();
      this.emit('refused', res.statusCode ?? 0);
    });
    socket.on('error', (err) =>
      log.warn(
        { err: { message: clip(err.message), code: (err as { code?: string }).code } },
        `collector connection error: ${explainConnectError(err, this.options.url)}`,
      ),
    );
    socket.on('open', () => {
      this.lastHeard = Date.now();
      const { farm, host, agent, hostKey } = this.options;
      socket.send(
        JSON.stringify({ type: 'hello', farm, host, stream: this.stream, agent, ...(hostKey ? { hostKey } : {}) }),
      );
      this.startHeartbeat(this.options.heartbeatSeconds ?? 15);
      this.welcomeTimer = setTimeout(() => {
        log.warn({ waitedMs: this.welcomeTimeoutMs }, 'no welcome from the collector: reconnecting');
        socket.terminate();
      }, this.welcomeTimeoutMs);
      this.welcomeTimer.unref();
    });
    socket.on('pong', () => (this.lastHeard = Date.now()));
    socket.on('ping', () => (this.lastHeard = Date.now()));
    socket.on('message', (data, isBinary) => {
      if (this.socket !== socket || socket.readyState !== WebSocket.OPEN) return;
      this.lastHeard = Date.now();
      if (isBinary) return this.refuse('collector sent a binary frame');
      const parsed = parseCollectorFrame(data.toString());
      if (parsed.kind === 'invalid') return this.refuse(parsed.problem);
      if (parsed.kind === 'unknown') {
        // Ignored, for a newer collector's sake; logged once per connection, the type cut short.
        this.unknownFrames += 1;
        if (this.unknownFrames === 1)
          log.warn({ type: parsed.type }, 'collector sent a frame type this agent does not know: ignored');
        return;
      }
      this.onFrame(parsed.frame);
    });
    socket.on('close', (code, reason) => {
      clearInterval(this.heartbeat);
      clearTimeout(this.welcomeTimer);
      clearTimeout(this.healthyTimer);
      const wasReady = this.hadWelcome;
      this.welcomed = false;
      this.hadWelcome = false;
      if (this.socket === socket) this.socket = undefined;
      log.info({ code, reason: clip(reason.toString(), 123) }, 'collector connection closed');
      if (code === CloseCode.goingAway) {
        this.ended = { kind: 'drained', leaseMs: leaseMs(this.welcomeHeartbeatSeconds) };
        this.drainedAtMs = Date.now();
      }
      if (wasReady) this.emit('down');
      this.scheduleReconnect();
    });
  }

  private get welcomeTimeoutMs(): number {
    return this.options.welcomeTimeoutMs ?? 10_000;
  }

  private onFrame(frame: CollectorFrame): void {
    const { log } = this.options;
    switch (frame.type) {
      case 'welcome': {
        if (this.hadWelcome) return this.refuse('a second welcome on one connection');
        clearTimeout(this.welcomeTimer);
        this.welcomed = true;
        this.hadWelcome = true;
        this.sentUpTo = frame.ack;
        this.serverLimits = frame.limits;
        this.serverFeatures = frame.features ?? [];
        this.startHeartbeat(frame.heartbeatSeconds);
        this.welcomeHeartbeatSeconds = frame.heartbeatSeconds;
        this.drainedAtMs = undefined;
        const socket = this.socket;
        clearTimeout(this.healthyTimer);
        this.healthyTimer = setTimeout(() => {
          if (this.socket === socket && this.welcomed) this.attempt = 0;
        }, this.options.healthyAfterMs ?? 60_000);
        this.healthyTimer.unref();
        log.info({ ack: frame.ack }, 'connected to collector');
        this.emit('welcome', frame.ack);
        break;
      }
      case 'ack':
        if (!this.welcomed) return this.refuse('an ack before the welcome');
        if (frame.seq > this.sentUpTo) {
          return this.refuse(`ack for seq ${frame.seq}, above the highest seq sent (${this.sentUpTo})`);
        }
        this.lastAckAt = Date.now();
        if (frame.rejected?.length) {
          const first = frame.rejected[0]!;
          log.warn(
            { rejected: frame.rejected.length, first: { seq: first.seq, reason: clip(first.reason) } },
            'collector rejected events',
          );
        }
        this.emit('ack', frame);
        break;
      case 'resync':
        if (!this.welcomed) return this.refuse('a resync before the welcome');
        this.emit('resync');
        break;
      case 'error':
        log.error({ code: clip(frame.code, 64), reason: clip(frame.message) }, 'collector closed the connection');
        if (frame.code === 'superseded') this.nextDelayFloorMs = this.options.supersededDelayMs ?? 60_000;
        this.emit('rejected', clip(frame.code, 64), clip(frame.message));
        break;
    }
  }

  private startHeartbeat(seconds: number): void {
    clearInterval(this.heartbeat);
    const intervalMs = seconds * 1000;
    this.heartbeat = setInterval(() => {
      const socket = this.socket;
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.lastHeard > silenceLimitMs(seconds)) {
        this.options.log.warn('collector silent for two heartbeats: reconnecting');
        socket.terminate();
        return;
      }
      socket.ping();
    }, intervalMs);
    this.heartbeat.unref();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const cause: Disconnect =
      this.ended.kind !== 'drained' && withinDrainLease(this.drainedAtMs, this.welcomeHeartbeatSeconds)
        ? { ...this.ended, afterDrain: true }
        : this.ended;
    const plan = reconnectDelay(cause, this.attempt, {
      ...(this.options.backoff ?? DEFAULT_RECONNECT_POLICY),
      drainSpreadMs: this.options.drainSpreadMs ?? DEFAULT_RECONNECT_POLICY.drainSpreadMs,
    });
    const delay = Math.max(this.nextDelayFloorMs, plan.delayMs);
    this.nextDelayFloorMs = 0;
    this.attempt = plan.attempt;
    this.options.log.info({ delayMs: Math.round(delay) }, 'reconnecting');
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
