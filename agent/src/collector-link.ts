/**
 * The agent's WebSocket to the collector: hello and welcome, acks, resync, its own heartbeat (a
 * collector silent for two intervals is dropped), and reconnects with exponential backoff and
 * jitter (at least a minute after `superseded`). What to send is the agent's business; the link
 * tells it when the collector is ready for frames.
 */
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import {
  AGENT_PATH,
  DEFAULT_LIMITS,
  SUBPROTOCOL,
  type AckFrame,
  type CollectorFrame,
  type Limits,
} from '@rasmon/protocol';
import type { Logger } from 'pino';

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
  stream: string;
  agent: string;
  log: Logger;
  backoff?: { initialMs: number; maxMs: number };
  /** Wait at least this long after `superseded` (docs/design.md §5: a minute). */
  supersededDelayMs?: number;
  /** Heartbeat before the collector's welcome says otherwise. */
  heartbeatSeconds?: number;
}

export interface LinkEvents {
  welcome: [ack: number];
  ack: [frame: AckFrame];
  resync: [];
  down: [];
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
  private stopped = false;
  private attempt = 0;
  private nextDelayFloorMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private lastHeard = 0;
  private serverLimits: Limits = DEFAULT_LIMITS;
  lastAckAt: number | undefined;

  constructor(private readonly options: LinkOptions) {
    super();
  }

  /** Connected and welcomed: frames may be sent. */
  get ready(): boolean {
    return this.welcomed && this.socket?.readyState === WebSocket.OPEN;
  }

  get limits(): Limits {
    return this.serverLimits;
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

  /** Sends one frame; false when not connected (it stays in the spool and goes after reconnecting). */
  send(frame: object): boolean {
    if (!this.ready) return false;
    this.socket!.send(JSON.stringify(frame));
    return true;
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
    });
    this.socket = socket;
    this.welcomed = false;
    socket.on('unexpected-response', (_req, res) => {
      log.error({ status: res.statusCode }, res.statusCode === 401 ? 'collector refused the token (401)' : 'collector refused the connection');
      res.resume();
      socket.terminate();
    });
    socket.on('error', (err) => log.warn({ err: { message: err.message } }, 'collector connection error'));
    socket.on('open', () => {
      this.lastHeard = Date.now();
      const { farm, host, stream, agent } = this.options;
      socket.send(JSON.stringify({ type: 'hello', farm, host, stream, agent }));
      this.startHeartbeat(this.options.heartbeatSeconds ?? 15);
    });
    socket.on('pong', () => (this.lastHeard = Date.now()));
    socket.on('ping', () => (this.lastHeard = Date.now()));
    socket.on('message', (data) => {
      this.lastHeard = Date.now();
      let frame: CollectorFrame;
      try {
        frame = JSON.parse(data.toString()) as CollectorFrame;
      } catch {
        log.warn('collector sent a frame that is not JSON');
        return;
      }
      this.onFrame(frame);
    });
    socket.on('close', (code, reason) => {
      clearInterval(this.heartbeat);
      const wasReady = this.welcomed;
      this.welcomed = false;
      if (this.socket === socket) this.socket = undefined;
      log.info({ code, reason: reason.toString() }, 'collector connection closed');
      if (wasReady) this.emit('down');
      this.scheduleReconnect();
    });
  }

  private onFrame(frame: CollectorFrame): void {
    const { log } = this.options;
    switch (frame.type) {
      case 'welcome':
        this.welcomed = true;
        this.attempt = 0;
        this.serverLimits = frame.limits;
        this.startHeartbeat(frame.heartbeatSeconds);
        log.info({ ack: frame.ack }, 'connected to collector');
        this.emit('welcome', frame.ack);
        break;
      case 'ack':
        this.lastAckAt = Date.now();
        if (frame.rejected?.length) log.warn({ rejected: frame.rejected }, 'collector rejected events');
        this.emit('ack', frame);
        break;
      case 'resync':
        log.info('collector asked for a snapshot');
        this.emit('resync');
        break;
      case 'error':
        log.error({ code: frame.code, reason: frame.message }, 'collector closed the connection');
        if (frame.code === 'superseded') this.nextDelayFloorMs = this.options.supersededDelayMs ?? 60_000;
        break;
      default:
        log.warn({ frame }, 'unknown frame from collector');
    }
  }

  private startHeartbeat(seconds: number): void {
    clearInterval(this.heartbeat);
    const intervalMs = seconds * 1000;
    this.heartbeat = setInterval(() => {
      const socket = this.socket;
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.lastHeard > 2 * intervalMs) {
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
    const { initialMs, maxMs } = this.options.backoff ?? { initialMs: 1000, maxMs: 60_000 };
    const ceiling = Math.min(maxMs, initialMs * 2 ** this.attempt);
    // Full jitter over the upper half: agents of a farm do not come back in step.
    const delay = Math.max(this.nextDelayFloorMs, ceiling / 2 + Math.random() * (ceiling / 2));
    this.nextDelayFloorMs = 0;
    this.attempt += 1;
    this.options.log.info({ delayMs: Math.round(delay) }, 'reconnecting');
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
