/** A scripted agent for tests: a real WebSocket client speaking protocol v1 to a real collector. */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { AckFrame, CollectorFrame, Session, WelcomeFrame } from '@rasmon/protocol';

export interface Closed {
  code: number;
  reason: string;
}

export class UpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`upgrade refused with HTTP ${status}`);
  }
}

export class TestAgent {
  readonly received: CollectorFrame[] = [];
  readonly closed: Promise<Closed>;
  /** How the connection closed, once it has. */
  private closing: Closed | undefined;
  private waiters: Array<() => void> = [];
  private cursor = 0;

  private constructor(readonly socket: WebSocket) {
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        this.closing = { code, reason: reason.toString() };
        resolve(this.closing);
        this.wake();
      });
    });
    socket.on('message', (data) => {
      this.received.push(JSON.parse(data.toString()) as CollectorFrame);
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /** Opens `/v1/agent` with a bearer token; rejects with UpgradeRefused when the collector says no. */
  static connect(
    baseUrl: string,
    token: string | undefined,
    options: { protocols?: string[]; path?: string; createConnection?: () => Duplex } = {},
  ): Promise<TestAgent> {
    const url = baseUrl.replace(/^http/, 'ws') + (options.path ?? '/v1/agent');
    const headers: Record<string, string> = token === undefined ? {} : { Authorization: `Bearer ${token}` };
    const socket = new WebSocket(url, options.protocols ?? ['rasmon.v1'], {
      headers,
      // The connection made by the test (one that starts with a PROXY header, as a balancer's).
      ...(options.createConnection ? { createConnection: options.createConnection as never } : {}),
    });
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new TestAgent(socket)));
      socket.once('unexpected-response', (_req, res) => {
        reject(new UpgradeRefused(res.statusCode ?? 0));
        res.resume();
        socket.terminate();
      });
      socket.once('error', reject);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The next frame received after the previous `next` (any type unless given). */
  async next<T extends CollectorFrame = CollectorFrame>(type?: T['type'], timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.received.length) {
        const frame = this.received[this.cursor++]!;
        if (type === undefined || frame.type === type) return frame as T;
      }
      if (this.socket.readyState === WebSocket.CLOSED) {
        // The close and the last frames say why: a failure in a long run names its cause in its first line.
        const how = this.closing ? ` (${this.closing.code} ${this.closing.reason})` : '';
        const last = JSON.stringify(this.received.slice(-3));
        throw new Error(`connection closed${how} while waiting for ${type ?? 'a frame'}; last frames ${last}`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0)
        throw new Error(`no ${type ?? 'frame'} within ${timeoutMs} ms; received ${JSON.stringify(this.received)}`);
      await Promise.race([new Promise<void>((resolve) => this.waiters.push(resolve)), sleep(remaining)]);
    }
  }

  /** `hostKey`: the agent's host key (docs/design.md §6); left out, the hello carries none, as an older agent's. */
  async hello(
    farm: string,
    host: string,
    stream = 'stream-1',
    agent?: string,
    hostKey?: string,
  ): Promise<WelcomeFrame> {
    this.send({ type: 'hello', farm, host, stream, ...(agent ? { agent } : {}), ...(hostKey ? { hostKey } : {}) });
    return this.next<WelcomeFrame>('welcome');
  }

  async snapshot(seq: number, sessions: Session[] | unknown[]): Promise<AckFrame> {
    this.send({ type: 'snapshot', seq, at: Date.now(), sessions });
    return this.next<AckFrame>('ack');
  }

  async events(events: unknown[]): Promise<AckFrame> {
    this.send({ type: 'events', events });
    return this.next<AckFrame>('ack');
  }

  async close(): Promise<Closed> {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(1000);
    return this.closed;
  }
}

/** A host key (43 base64url characters) made from `seed`: the same seed, the same key, as an agent keeps its own. */
export function hostKeyOf(seed: string): string {
  return createHash('sha256').update(seed).digest('base64url').slice(0, 43);
}

let sinceClock = 1_700_000_000_000;

/** A valid session; fields as given, the rest filled in. */
export function session(id: string, user: string, fields: Partial<Session> = {}): Session {
  return {
    id,
    user,
    admin: false,
    kind: 'desktop',
    via: 'ras',
    state: 'active',
    since: fields.since ?? (sinceClock += 1000),
    ...fields,
  };
}

export const upsert = (seq: number, s: Session) => ({ seq, at: Date.now(), op: 'upsert', session: s });
export const end = (seq: number, id: string) => ({ seq, at: Date.now(), op: 'end', id });
