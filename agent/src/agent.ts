/**
 * The agent: polls its session source, diffs each list against the last, spools the events
 * (durably) and sends them; sends a snapshot on every connect, on `resync` and every
 * `snapshotIntervalSeconds`. Everything that sends runs in one queue, so seqs go out in order and
 * a snapshot's seq always follows the events it includes.
 */
import { FEATURES, statusErrorText, type Session, type StatusFrame } from '@rasmon/protocol';
import type { Logger } from 'pino';
import { CollectorLink, type LinkOptions } from './link/collector-link.js';
import type { AgentMetrics } from './metrics.js';
import { SessionDiff, type EventBody } from './session/session-diff.js';
import { SessionJournal, applyEvents } from './link/session-journal.js';
import type { SessionSource } from './session/source.js';
import { Spool, newStream } from './link/spool.js';

/** How long after a source's change notice the agent polls (one poll per burst of notices). */
const WAKE_DEBOUNCE_MS = 200;
/**
 * A status that did not change goes again after this long, so the collector's last-success time
 * of a healthy source stays current and a status lost with the collector's data comes back.
 */
const STATUS_REFRESH_MS = 60_000;

export interface AgentOptions {
  source: SessionSource;
  spool: { dir: string; maxBytes: number };
  link: Omit<LinkOptions, 'stream' | 'log'>;
  pollIntervalSeconds: number;
  snapshotIntervalSeconds: number;
  log: Logger;
  metrics?: AgentMetrics;
  /** Snapshots asked for by `resync` go out at most this often (default 5 s). */
  resyncMinIntervalMs?: number;
  /** Told each poll's outcome (the error when the source failed): the service's Event Log alerts. */
  onPoll?: (error?: unknown) => void;
}

export class Agent {
  private readonly diff = new SessionDiff();
  private link!: CollectorLink;
  private spool!: Spool;
  private journal!: SessionJournal;
  /** Highest seq sent on the current connection. */
  private sentUpTo = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private pollTimer: NodeJS.Timeout | undefined;
  private snapshotTimer: NodeJS.Timeout | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private stopped = false;
  private droppedReported = 0;
  private writeErrorsReported = 0;
  /** Seq of the snapshot sent and not yet acked on this connection. */
  private snapshotInFlight: number | undefined;
  private lastSnapshotAt = 0;
  /** At most one resync waits, however many the collector sends. */
  private resyncWanted = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** A snapshot for a resync is queued and not yet sent. */
  private resyncQueued = false;
  /** The source's health as the last poll left it. */
  private sourceStatus: StatusFrame;
  /** The status last sent on this connection (undefined: none yet), and when. */
  private sentStatus: StatusFrame | undefined;
  private sentStatusAt = 0;

  constructor(private readonly options: AgentOptions) {
    this.sourceStatus = { type: 'status', source: options.source.name, ok: true };
  }

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
    this.link = new CollectorLink({
      ...this.options.link,
      stream: this.spool.stream,
      log: log.child({ module: 'link' }),
    });
    this.link.on('welcome', (ack) => this.welcomed(ack));
    this.link.on('ack', (frame) => {
      if (this.snapshotInFlight !== undefined && frame.seq >= this.snapshotInFlight) this.snapshotInFlight = undefined;
      void this.enqueue(() => this.onAck(frame.seq));
      this.maybeResync();
    });
    this.link.on('resync', () => {
      if (!this.resyncWanted) this.options.log.info('collector asked for a snapshot');
      this.resyncWanted = true;
      this.maybeResync();
    });
    this.link.on('down', () => {
      this.options.metrics?.connected.set(0);
      // The next welcome brings a snapshot anyway.
      this.snapshotInFlight = undefined;
      this.resyncWanted = false;
      this.sentStatus = undefined;
      clearTimeout(this.resyncTimer);
      this.resyncTimer = undefined;
    });
    this.updateSpoolMetrics();
    await this.enqueue(() => this.poll());
    this.link.start();
    this.schedulePoll();
    this.unwatch = this.options.source.watch?.(() => this.wake());
    this.snapshotTimer = setInterval(
      () => void this.enqueue(() => this.sendSnapshot()),
      this.options.snapshotIntervalSeconds * 1000,
    );
    this.snapshotTimer.unref();
  }

  /** Stops polling, lets queued work finish, closes the connection and the spool. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unwatch?.();
    clearTimeout(this.wakeTimer);
    clearTimeout(this.pollTimer);
    clearInterval(this.snapshotTimer);
    clearTimeout(this.resyncTimer);
    await this.queue;
    await this.link?.stop();
    await this.spool?.close();
    await this.journal?.close(this.diff.sessions());
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    this.pollTimer = setTimeout(() => {
      void this.enqueue(() => this.poll()).finally(() => this.schedulePoll());
    }, this.options.pollIntervalSeconds * 1000);
  }

  /**
   * The source saw a session change: poll now. Events come in bursts (a logon is create, connect,
   * logon, state change): one poll a short moment after the first covers the burst.
   */
  private wake(): void {
    if (this.stopped || this.wakeTimer) return;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      void this.enqueue(() => this.poll());
    }, WAKE_DEBOUNCE_MS);
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
      this.options.onPoll?.(err);
      this.setSourceStatus(false, err);
      return;
    } finally {
      this.options.metrics?.pollDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    }
    this.options.onPoll?.();
    this.setSourceStatus(true);
    const events = this.diff.next(sessions);
    this.options.metrics?.sessions.set(sessions.length);
    this.options.metrics?.adminUnknown.set(this.options.source.adminUnknown?.() ?? 0);
    if (events.length === 0) return;
    await this.spool.append(events, Date.now());
    await this.journal.append(events, () => this.diff.sessions());
    this.updateSpoolMetrics();
    this.flush();
  }

  /** Records one poll's outcome in the source status, and sends it when it changed or is due. */
  private setSourceStatus(ok: boolean, err?: unknown): void {
    const previous = this.sourceStatus;
    const status: StatusFrame = { type: 'status', source: this.options.source.name, ok };
    if (!ok) status.error = statusErrorText(err instanceof Error ? err.message : String(err)) || 'the source failed';
    const lastListAt = ok ? Date.now() : previous.lastListAt;
    if (lastListAt !== undefined) status.lastListAt = lastListAt;
    this.sourceStatus = status;
    const sent = this.sentStatus;
    const changed = sent === undefined || sent.ok !== status.ok || sent.error !== status.error;
    if (changed || Date.now() - this.sentStatusAt >= STATUS_REFRESH_MS) this.sendStatus();
  }

  /** Sends the source status, only to a collector whose welcome lists the `status` feature. */
  private sendStatus(): void {
    if (!this.link?.ready || !this.link.features.includes(FEATURES.status)) return;
    if (this.link.send(this.sourceStatus, 0)) {
      this.sentStatus = this.sourceStatus;
      this.sentStatusAt = Date.now();
    }
  }

  /**
   * The list the spooled events lead to (link/session-journal.ts), so that a restarted agent diffs
   * against what it reported: the journal, with the spool's pending events (durable, and written
   * before the journal) applied on top. Losing it is harmless: the snapshot on connect repairs
   * whatever the diff misses.
   */
  private async restoreSessions(): Promise<void> {
    this.journal = new SessionJournal(this.options.spool.dir, this.options.log.child({ module: 'sessions' }));
    const sessions = await this.journal.read();
    applyEvents(
      sessions,
      this.spool
        .pendingAfter(0)
        .map((event): EventBody =>
          event.op === 'end' ? { op: 'end', id: event.id } : { op: 'upsert', session: event.session },
        ),
    );
    this.diff.restore([...sessions.values()]);
    this.options.source.resume?.(this.diff.sessions());
    await this.journal.compact(this.diff.sessions());
  }

  /**
   * A welcome that acks a seq this agent never handed out: its spool was restored from an older
   * copy, or seqs handed out while the disk was full were lost in a restart (or the peer lies).
   * The old stream cannot be continued without new events being taken for duplicates: nothing is
   * saved, and the pending events go out again under a new stream.
   */
  private welcomed(ack: number): void {
    if (ack > this.spool.highestSeq) {
      this.options.log.error(
        { ack, highestSeq: this.spool.highestSeq },
        'collector acks a seq above any this agent handed out: starting a new stream',
      );
      // The next hello names the new stream, however soon it goes; the renumbering is queued
      // before anything that next connection asks for.
      const stream = newStream();
      this.link.setStream(stream);
      this.link.refuse(`welcome ack ${ack} above the highest seq handed out (${this.spool.highestSeq})`);
      void this.enqueue(() => this.spool.restartStream(stream));
      return;
    }
    void this.enqueue(() => this.onWelcome(ack));
  }

  private maybeResync(): void {
    if (!this.resyncWanted || this.resyncQueued || this.snapshotInFlight !== undefined || this.resyncTimer) return;
    const wait = this.lastSnapshotAt + (this.options.resyncMinIntervalMs ?? 5000) - Date.now();
    if (wait > 0) {
      this.resyncTimer = setTimeout(() => {
        this.resyncTimer = undefined;
        this.maybeResync();
      }, wait);
      this.resyncTimer.unref();
      return;
    }
    this.resyncWanted = false;
    this.resyncQueued = true;
    void this.enqueue(() => this.sendSnapshot()).finally(() => {
      this.resyncQueued = false;
      this.maybeResync();
    });
  }

  private async onWelcome(ack: number): Promise<void> {
    this.options.metrics?.connected.set(1);
    await this.spool.ack(ack);
    this.sentUpTo = ack;
    this.flush();
    await this.sendSnapshot();
    this.sendStatus();
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
    let upTo = 0;
    const sendFrame = () => {
      if (frame.length === 0) return;
      this.link.send({ type: 'events', events: frame }, upTo);
      frame = [];
      bytes = 0;
    };
    for (const event of pending) {
      const size = Buffer.byteLength(JSON.stringify(event)) + 1;
      // Room for the envelope {"type":"events","events":[...]}.
      if (size > maxFrameBytes - 64) {
        // It would be refused (1009) at every attempt, holding up everything after it.
        this.options.log.error(
          { seq: event.seq, bytes: size, maxFrameBytes },
          'event larger than any frame the collector accepts: dropped',
        );
        void this.spool
          .discard(event.seq, 'larger than the collector frame limit')
          .then(() => this.updateSpoolMetrics());
        continue;
      }
      if (frame.length >= maxEvents || bytes + size > maxFrameBytes - 64) sendFrame();
      upTo = event.seq;
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
    // Measured with the longest seq: a snapshot cannot be split, so one over the limit is not sent.
    const { maxFrameBytes } = this.link.limits;
    const bytes = Buffer.byteLength(
      JSON.stringify({ type: 'snapshot', seq: Number.MAX_SAFE_INTEGER, at: Date.now(), sessions }),
    );
    if (bytes > maxFrameBytes) {
      this.options.log.error(
        { sessions: sessions.length, bytes, maxFrameBytes },
        'snapshot larger than the collector accepts in one frame: not sent (raise limits.maxFrameBytes on the collector)',
      );
      return;
    }
    const seq = await this.spool.reserveSeq();
    if (this.link.send({ type: 'snapshot', seq, at: Date.now(), sessions }, seq)) {
      this.sentUpTo = seq;
      this.snapshotInFlight = seq;
      this.lastSnapshotAt = Date.now();
    }
  }

  private updateSpoolMetrics(): void {
    const metrics = this.options.metrics;
    if (!metrics) return;
    metrics.spoolEvents.set(this.spool.depth);
    metrics.spoolBytes.set(this.spool.sizeBytes);
    metrics.spoolDropped.inc(this.spool.dropped - this.droppedReported);
    this.droppedReported = this.spool.dropped;
    metrics.spoolWriteErrors.inc(this.spool.writeErrors - this.writeErrorsReported);
    this.writeErrorsReported = this.spool.writeErrors;
  }
}
