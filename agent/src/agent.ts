/**
 * The agent: polls its session source, diffs each list against the last, spools the events
 * (durably) and sends them; sends a snapshot on every connect, on `resync` and every
 * `snapshotIntervalSeconds`. Everything that sends runs in one queue, so seqs go out in order and
 * a snapshot's seq always follows the events it includes.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSession, type Session } from '@rasmon/protocol';
import type { Logger } from 'pino';
import { CollectorLink, type LinkOptions } from './collector-link.js';
import type { AgentMetrics } from './metrics.js';
import { SessionDiff } from './session-diff.js';
import type { SessionSource } from './sources/source.js';
import { Spool } from './spool.js';

export interface AgentOptions {
  source: SessionSource;
  spool: { dir: string; maxBytes: number };
  link: Omit<LinkOptions, 'stream' | 'log'>;
  pollIntervalSeconds: number;
  snapshotIntervalSeconds: number;
  log: Logger;
  metrics?: AgentMetrics;
}

export class Agent {
  private readonly diff = new SessionDiff();
  private link!: CollectorLink;
  private spool!: Spool;
  /** Highest seq sent on the current connection. */
  private sentUpTo = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private pollTimer: NodeJS.Timeout | undefined;
  private snapshotTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private droppedReported = 0;

  constructor(private readonly options: AgentOptions) {}

  get spoolState(): Spool {
    return this.spool;
  }

  get connection(): CollectorLink {
    return this.link;
  }

  /** Opens the spool, reads the sessions once, connects, and starts polling. */
  async start(): Promise<void> {
    const { log } = this.options;
    this.spool = await Spool.open({ ...this.options.spool, log: log.child({ module: 'spool' }) });
    await this.restoreSessions();
    this.link = new CollectorLink({ ...this.options.link, stream: this.spool.stream, log: log.child({ module: 'link' }) });
    this.link.on('welcome', (ack) => void this.enqueue(() => this.onWelcome(ack)));
    this.link.on('ack', (frame) => void this.enqueue(() => this.onAck(frame.seq)));
    this.link.on('resync', () => void this.enqueue(() => this.sendSnapshot()));
    this.link.on('down', () => this.options.metrics?.connected.set(0));
    this.updateSpoolMetrics();
    await this.enqueue(() => this.poll());
    this.link.start();
    this.schedulePoll();
    this.snapshotTimer = setInterval(
      () => void this.enqueue(() => this.sendSnapshot()),
      this.options.snapshotIntervalSeconds * 1000,
    );
    this.snapshotTimer.unref();
  }

  /** Stops polling, lets queued work finish, closes the connection and the spool. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.pollTimer);
    clearInterval(this.snapshotTimer);
    await this.queue;
    await this.link?.stop();
    await this.spool?.close();
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    this.pollTimer = setTimeout(() => {
      void this.enqueue(() => this.poll()).finally(() => this.schedulePoll());
    }, this.options.pollIntervalSeconds * 1000);
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T | undefined> {
    const run = this.queue.then(task).catch((err: unknown) => {
      this.options.log.error({ err }, 'agent step failed');
      return undefined;
    });
    this.queue = run;
    return run;
  }

  private async poll(): Promise<void> {
    const started = process.hrtime.bigint();
    let sessions: Session[];
    try {
      sessions = await this.options.source.list(Date.now());
    } catch (err) {
      // A failed read is not an empty host: keep what we have and try again next poll.
      this.options.log.warn({ err, source: this.options.source.name }, 'could not read the sessions');
      this.options.metrics?.pollErrors.inc();
      return;
    } finally {
      this.options.metrics?.pollDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
    const events = this.diff.next(sessions);
    this.options.metrics?.sessions.set(sessions.length);
    if (events.length === 0) return;
    await this.spool.append(events, Date.now());
    await this.saveSessions(sessions);
    this.updateSpoolMetrics();
    this.flush();
  }

  private get sessionsFile(): string {
    return join(this.options.spool.dir, 'sessions.json');
  }

  /**
   * The list the spooled events lead to, kept beside the spool so that a restarted agent diffs
   * against what it reported rather than against nothing: a session that ended while the agent was
   * down then goes out as an `end`, not as a snapshot correction. Losing it is harmless: the
   * snapshot on connect repairs whatever the diff misses.
   */
  private async saveSessions(sessions: readonly Session[]): Promise<void> {
    const tmp = `${this.sessionsFile}.tmp`;
    await writeFile(tmp, JSON.stringify(sessions));
    await rename(tmp, this.sessionsFile);
  }

  private async restoreSessions(): Promise<void> {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(this.sessionsFile, 'utf8'));
    } catch {
      return;
    }
    if (!Array.isArray(raw)) return;
    // Validated but not normalized: it must compare equal to what the source reports again.
    const sessions = raw.filter((item) => !('reason' in parseSession(item))) as Session[];
    this.diff.restore(sessions);
  }

  private async onWelcome(ack: number): Promise<void> {
    this.options.metrics?.connected.set(1);
    await this.spool.ack(ack);
    this.sentUpTo = ack;
    this.flush();
    await this.sendSnapshot();
  }

  private async onAck(seq: number): Promise<void> {
    await this.spool.ack(seq);
    this.options.metrics?.lastAck.set(Date.now() / 1000);
    this.updateSpoolMetrics();
  }

  /** Sends every spooled event not yet sent on this connection, in frames within the limits. */
  private flush(): void {
    if (!this.link.ready) return;
    const pending = this.spool.pendingAfter(this.sentUpTo);
    const { maxEvents, maxFrameBytes } = this.link.limits;
    let frame: unknown[] = [];
    let bytes = 0;
    const sendFrame = () => {
      if (frame.length === 0) return;
      this.link.send({ type: 'events', events: frame });
      frame = [];
      bytes = 0;
    };
    for (const event of pending) {
      const size = Buffer.byteLength(JSON.stringify(event)) + 1;
      // Room for the envelope {"type":"events","events":[...]}.
      if (frame.length >= maxEvents || bytes + size > maxFrameBytes - 64) sendFrame();
      frame.push(event);
      bytes += size;
      this.sentUpTo = event.seq;
    }
    sendFrame();
  }

  private async sendSnapshot(): Promise<void> {
    if (!this.link.ready) return;
    this.flush();
    const sessions = this.diff.sessions();
    if (sessions.length > this.link.limits.maxSessions) {
      this.options.log.error(
        { sessions: sessions.length, maxSessions: this.link.limits.maxSessions },
        'more sessions than the collector accepts in one snapshot',
      );
      return;
    }
    const seq = await this.spool.reserveSeq();
    if (this.link.send({ type: 'snapshot', seq, at: Date.now(), sessions })) this.sentUpTo = seq;
  }

  private updateSpoolMetrics(): void {
    const metrics = this.options.metrics;
    if (!metrics) return;
    metrics.spoolEvents.set(this.spool.depth);
    metrics.spoolBytes.set(this.spool.sizeBytes);
    metrics.spoolDropped.inc(this.spool.dropped - this.droppedReported);
    this.droppedReported = this.spool.dropped;
  }
}
