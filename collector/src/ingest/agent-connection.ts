/**
 * One agent's WebSocket: the protocol v1 state machine (docs/design.md §3). Frames are handled one at a
 * time, in order; while one is being applied the socket is paused, so a flooding agent is held
 * back by TCP instead of by memory.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { WebSocket } from 'ws';
import {
  CloseCode,
  ERROR_CLOSE_CODES,
  FEATURES,
  normalizeHost,
  silenceLimitMs,
  type CollectorFrame,
  type ErrorCode,
  type HelloFrame,
  type Limits,
  type ParsedEvents,
  MAX_LISTED_REJECTIONS,
  MAX_REJECTION_ID_CHARS,
  type Rejection,
  type StatusFrame,
} from '@rasmon/protocol';
import { sha256Hex, type FarmConfig } from '../config/config.js';
import { farmQuotas } from '../config/farm-quotas.js';
import type { FarmEpochs } from '../engine/farm-clock.js';
import type { FarmDirectory, PeerNames } from '../config/farm-directory.js';
import type {
  ApplyResult,
  HelloBinding,
  HelloResult,
  HostClaim,
  LicenseEngine,
  RenewResult,
} from '../engine/license-engine.js';
import type { Logger } from '@rasmon/protocol/kit';
import {
  writeRefusalOf,
  type CollectorMetrics,
  type FarmQuotaRefusal,
  type UpgradeRejection,
} from '../metrics/metrics.js';
import { admit, type AdmissionRefusal, type Credentials } from './admission.js';
import { TokenBucket } from './rate-limit.js';
import type { RefusalLog } from './refusal-log.js';
import type { FarmBudgets } from './farm-budget.js';
import type { FrameParseThread } from './frame-parse-thread.js';
import type { ReadSnapshot } from './frame-read.js';

/** Hosts warned of for a missing host key that a collector remembers (about 100 bytes each). */
const MAX_KEYLESS_WARNED = 100_000;

/** Above this many bytes unsent to an agent, the collector stops reading it until it has read them. */
export const OUTPUT_SOFT_LIMIT = 256 * 1024;
/** Above this many, the agent is dropped at once. */
export const OUTPUT_HARD_LIMIT = 4 * 1024 * 1024;

/** What a connection needs from the collector around it. */
export interface ConnectionContext {
  /** Looks up the farm's rules itself, at every call, so a reload applies from the next frame on. */
  engine: LicenseEngine;
  metrics: CollectorMetrics;
  limits: Limits;
  /** Frames and bytes one connection may send per second (token buckets; beyond, it is not read). */
  rates: { framesPerSecond: number; bytesPerSecond: number };
  /** What all the connections of one farm may take together (bytes, script time). */
  budgets: FarmBudgets;
  /** Parses frames: big ones off this thread. */
  frames: FrameParseThread;
  heartbeatSeconds: number;
  /** The farms of the configuration loaded now (a reload replaces the directory), for admission. */
  farms(): FarmDirectory;
  /** The farms' epochs: a hello claims the host under the farm's, and a connection told its epoch is stale reads it again. */
  epochs: FarmEpochs;
  /** A hello of this connection took its host: older local connections for it are superseded. */
  claimed(connection: AgentConnection): void;
}

/**
 * A frame as it came: its bytes, decoded where they are parsed (a big frame in the parse thread,
 * frame-parse-thread.ts: a large string made here would live on this thread's heap until a full
 * collection, which pauses every farm's frames). A binary frame is only refused.
 */
interface Received {
  data: Buffer;
  binary: boolean;
}

export class AgentConnection implements Credentials {
  /** Set by an accepted hello. */
  claim: HostClaim | undefined;
  agent: string | undefined;
  /** The client certificate's names (with `tls.ca`), for `hostIdentity: certificate`. */
  peer: PeerNames | undefined;
  /** Where hellos refused for their host identity are logged, rate-limited; else as any failure. */
  identityRefusals: RefusalLog | undefined;
  /** Where sessions refused over the farm's quotas are logged, rate-limited per farm. */
  quotaRefusals: RefusalLog | undefined;
  /**
   * "farm\nhost" of the hosts whose agent sent no host key, already warned of (once per host and
   * collector); shared by the agent server's connections.
   */
  keylessHosts: Set<string> | undefined;
  /** sha256 hex of the host key the hello carried (never the key itself). */
  private hostKeyHash: string | undefined;
  /** Last time a ping or pong came from the agent, ms. */
  lastHeard = Date.now();
  readonly openedAt = Date.now();
  private queue: Received[] = [];
  private running = false;
  /** Settles when the queue is empty; replaced each time pumping starts. */
  private idle: Promise<void> = Promise.resolve();
  private closed = false;
  /**
   * A resync was sent and no snapshot has arrived since (no other is sent meanwhile); settled for
   * {@link stateIn}'s waiters once one is in or the connection ends.
   */
  private stateOwed: { promise: Promise<void>; paid: () => void } | undefined;
  /** Asked for its state after the farm's data was lost, and not yet resent (docs/design.md §6). */
  rebuilding = false;
  /** The farm epoch under which this host's whole state was last applied (a snapshot), if any. */
  stateEpoch: string | undefined;
  /** When this connection last took or renewed its host's lease (local clock), ms. */
  renewedAt = 0;
  /** Closed by the collector's drain, its host's lease kept (see {@link keepLeaseAtClose}). */
  private handedOver = false;
  /** Script time (ms) the frame being handled took so far: settled against the farm's budget. */
  private scriptMs = 0;
  /** The latest re-take of the host under a new epoch (see {@link reclaim}). */
  private reclaimed: Promise<void> = Promise.resolve();
  private readonly frameBucket: TokenBucket;
  private readonly byteBucket: TokenBucket;
  /** Polls whether an agent that does not read has caught up; see {@link awaitCatchUp}. */
  private catchUpTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    /** The farm the bearer token belongs to. */
    readonly farmId: string,
    /** sha256 of the bearer token, to close the connection when a reload revokes it. */
    readonly tokenSha256: string,
    private readonly socket: WebSocket,
    private readonly ctx: ConnectionContext,
    /** The agent server's logger; this connection's lines add its own fields to it. */
    private readonly baseLog: Logger,
    /** The peer's address, for log lines (the upgrade request itself is not kept). */
    private readonly remote: string | undefined,
  ) {
    const { framesPerSecond, bytesPerSecond } = ctx.rates;
    this.frameBucket = new TokenBucket(framesPerSecond, framesPerSecond);
    // A frame of maxFrameBytes always fits the bucket; it may only have to wait for it.
    this.byteBucket = new TokenBucket(bytesPerSecond, Math.max(bytesPerSecond, ctx.limits.maxFrameBytes));
    // Only an answer to a ping (or a ping) counts as heard: a peer that keeps sending but never
    // reads would otherwise never look silent, while what is sent to it piles up.
    socket.on('message', (data, isBinary) => {
      this.enqueue({ data: data as Buffer, binary: isBinary });
    });
    socket.on('pong', () => (this.lastHeard = Date.now()));
    socket.on('ping', () => (this.lastHeard = Date.now()));
  }

  /**
   * A logger with this connection's fields, made when a line is logged: a child logger kept per
   * connection would cost every idle connection its bindings for nothing.
   */
  get log(): Logger {
    const claim = this.claim;
    return this.baseLog.child(
      claim
        ? { conn: this.id, remote: this.remote, farm: this.farmId, host: claim.host, stream: claim.stream }
        : { conn: this.id, remote: this.remote },
    );
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Not read while it catches up on its unsent acks: its pongs are not read either, so it is judged
   * by the catch-up deadline (dropped as `not_reading`), not by silence.
   */
  get awaitingCatchUp(): boolean {
    return this.catchUpTimer !== undefined;
  }

  /** Resolves once the frames already received are handled. */
  settled(): Promise<void> {
    return this.idle;
  }

  send(frame: CollectorFrame): void {
    if (this.closed) return;
    this.socket.send(JSON.stringify(frame));
    if (this.socket.bufferedAmount > OUTPUT_HARD_LIMIT) this.dropUnreading();
  }

  /** Sends an error frame and closes with the code docs/design.md §3 gives it. */
  fail(code: ErrorCode, message: string, { logged = true } = {}): void {
    if (this.closed) return;
    // Closed for a reason of its own (revoked by a reload, a protocol error), even during a drain:
    // the host's lease ends with it, as at any other such close.
    this.handedOver = false;
    if (logged) this.log.info({ code, reason: message }, 'closing agent connection');
    this.send({ type: 'error', code, message });
    this.close(ERROR_CLOSE_CODES[code], code);
  }

  /** Another connection took this host: a newer hello, on this collector or another. */
  superseded(): void {
    if (this.closed) return;
    this.ctx.metrics.supersedes.inc({ farm: this.farmId });
    this.fail('superseded', 'a newer connection took this host');
  }

  /**
   * The host is bound to another agent's host key (or this agent sent none): the token may be
   * any host's of the farm, but only that key speaks for this host (docs/design.md §6).
   */
  private refuseBound(farm: string, host: string): void {
    const message = `host ${host} of farm ${farm} is bound to another agent's host key (rasmon-collector rebind-host frees it for a re-imaged host)`;
    this.refuse('hello');
    this.ctx.metrics.agentsRefused.inc({ reason: 'host_bound' });
    this.identityRefusals?.refused('host_bound', farm, 'forbidden', message);
    this.fail('forbidden', message, { logged: this.identityRefusals === undefined });
  }

  /** An older agent on a host not bound yet: let in, with a warning once per host. */
  private warnKeyless(farm: string, host: string): void {
    const key = `${farm}\n${host}`;
    const warned = this.keylessHosts;
    if (warned?.has(key)) return;
    // Bounded: past this many hosts, every further keyless hello warns again rather than grow the set.
    if (warned && warned.size < MAX_KEYLESS_WARNED) warned.add(key);
    this.log.warn(
      'agent sent no host key: upgrade its agent: this host can be taken over by any holder of the farm token',
    );
  }

  /** A reload replaced the farms: closes the connection if it may no longer hold what it holds. */
  recheck(): void {
    const { refusal } = admit(this.ctx.farms(), this, this.claim?.host, { kind: 'reload' });
    if (refusal) this.refuseAdmission(refusal);
  }

  private refuseAdmission({ reason, message, identity }: AdmissionRefusal): void {
    // A leaked token trying host names is logged per farm, rate-limited (no address).
    if (identity) this.identityRefusals?.refused(identity.reason, this.farmId, 'forbidden', identity.message);
    this.ctx.metrics.upgradesRejected.inc({ reason });
    this.fail('forbidden', message, { logged: identity === undefined || this.identityRefusals === undefined });
  }

  /**
   * Every heartbeat: drops the connection if the agent went silent or never said hello, else pings
   * it and renews its host's lease.
   */
  async heartbeat(): Promise<void> {
    const now = Date.now();
    const silenceMs = silenceLimitMs(this.ctx.heartbeatSeconds);
    if (!this.awaitingCatchUp && now - this.lastHeard > silenceMs) {
      this.baseLog.info({ conn: this.id }, 'agent silent for two heartbeats (no pong): terminating');
      this.ctx.metrics.agentsDropped.inc({ reason: 'silent' });
      this.terminate();
      return;
    }
    if (!this.claim && now - this.openedAt > silenceMs) {
      // An authenticated socket that never says hello holds a slot for nothing.
      this.ctx.metrics.upgradesRejected.inc({ reason: 'hello_required' });
      this.fail('hello_required', `no hello within ${silenceMs / 1000} s`);
      return;
    }
    this.ping();
    if ((await this.renewLease()) !== 'epoch') return;
    // Redis is unreachable: the next heartbeat tries again.
    await this.epochLost().catch(() => undefined);
  }

  /**
   * Renews this connection's host lease; a connection another one superseded is closed. Undefined
   * when there is nothing to renew or Redis did not answer (idle connections stay open, docs/design.md §3).
   */
  private async renewLease(): Promise<RenewResult | undefined> {
    const claim = this.claim;
    const engine = this.ctx.engine.farm(this.farmId);
    if (!claim || this.closed || !engine) return undefined;
    try {
      const result = await engine.renew(claim);
      if (result === 'superseded') this.superseded();
      else if (result === 'ok') this.renewedAt = Date.now();
      return result;
    } catch {
      return undefined;
    }
  }

  /**
   * The collector is stopping (a planned restart): the host keeps its lease when this connection
   * closes instead of losing it, so that its agent can take it again on any collector within the
   * lease without the host ever showing down; if none does, it lapses (docs/design.md §2 rule 10).
   */
  keepLeaseAtClose(): void {
    // A connection already closing (its agent stopped, a protocol error) releases as it would have.
    if (!this.closed) this.handedOver = true;
  }

  /**
   * At a drain, renews the lease one last time, so the agent has a whole lease to come back in. An
   * agent not heard from within the silence limit gets no renewal: its lease lapses as it would have.
   */
  async renewBeforeHandOver(): Promise<void> {
    if (Date.now() - this.lastHeard > silenceLimitMs(this.ctx.heartbeatSeconds)) return;
    await this.renewLease();
  }

  /** This host no longer holds its farm's rebuild open. */
  private async rebuildDone(claim: HostClaim): Promise<void> {
    this.rebuilding = false;
    await this.ctx.engine.rebuilt(this.farmId, claim.host).catch((err: unknown) => {
      // The mark expires by itself (REBUILD_MAX_MS).
      this.log.debug({ err }, 'could not clear the rebuild mark');
    });
  }

  /**
   * The host's lease ends at once with its connection (docs/design.md §2 rule 10), if this connection
   * still owns it; unless the collector's drain handed it over, then it lapses by itself if no agent takes it.
   */
  async release(): Promise<void> {
    const claim = this.claim;
    if (!claim) return;
    if (this.rebuilding) await this.rebuildDone(claim);
    if (this.handedOver) return;
    try {
      // A farm removed by a reload is released under the rules it had.
      await this.ctx.engine.release(this.farmId, claim);
    } catch (err) {
      // The lease lapses by itself within 3 heartbeats.
      this.baseLog.warn({ err, conn: this.id }, 'could not release host lease');
    }
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.statePaid();
    this.socket.close(code, reason);
  }

  terminate(): void {
    this.closed = true;
    clearInterval(this.catchUpTimer);
    this.statePaid();
    this.socket.terminate();
  }

  ping(): void {
    if (!this.closed) this.socket.ping();
  }

  onClose(listener: () => void): void {
    if (this.socket.readyState === this.socket.CLOSED) listener();
    else this.socket.once('close', () => listener());
  }

  /** The socket is gone (closed by either side or terminated). */
  markClosed(): void {
    this.closed = true;
    this.queue.length = 0;
    this.statePaid();
  }

  /** Asks the agent for a snapshot, once until one arrives (`again`: even if one was asked for). */
  resync(again = false): void {
    if (this.closed || (this.stateOwed && !again)) return;
    if (!this.stateOwed) {
      let paid = () => {};
      const promise = new Promise<void>((resolve) => (paid = resolve));
      this.stateOwed = { promise, paid };
    }
    this.send({ type: 'resync' });
  }

  /** Settles once no snapshot is owed: the one a resync asked for is in, or the connection ended. */
  stateIn(): Promise<void> {
    return this.stateOwed?.promise ?? Promise.resolve();
  }

  private statePaid(): void {
    this.stateOwed?.paid();
    this.stateOwed = undefined;
  }

  private enqueue(frame: Received): void {
    if (this.closed) return;
    this.queue.push(frame);
    if (!this.running) void this.pump();
  }

  /** Handles the queued frames one at a time until none is left. */
  private pump(): Promise<void> {
    this.idle = this.runQueue();
    return this.idle;
  }

  private async runQueue(): Promise<void> {
    this.running = true;
    this.socket.pause();
    try {
      while (this.queue.length > 0 && !this.closed) {
        const frame = this.queue.shift()!;
        // Over its rate, the connection waits (not read meanwhile), and so does every connection of
        // a farm over the farm's budgets: one farm's hosts cannot take the Redis time of another's.
        const bytes = frame.data.length;
        const done = await this.ctx.budgets.turn(this.farmId, bytes);
        const farm = this.ctx.budgets.admit(this.farmId, bytes);
        if (farm.reason) this.ctx.metrics.farmThrottled.inc({ farm: this.farmId, reason: farm.reason });
        const wait = Math.max(this.frameBucket.take(1), this.byteBucket.take(bytes), farm.waitMs);
        this.scriptMs = 0;
        try {
          if (wait > 0) await sleep(wait);
          if (this.closed) break;
          await this.handle(frame);
        } finally {
          this.ctx.budgets.settle(this.farmId, farm, bytes, this.scriptMs);
          done();
        }
      }
    } catch (err) {
      // A Redis failure: the frame is not acked, and the agent will send it again (1013).
      this.log.warn({ err }, 'frame could not be applied');
      this.ctx.metrics.redisUp.set(0);
      const refusal = writeRefusalOf(err instanceof Error ? err.message : String(err));
      if (refusal) this.ctx.metrics.noteFrameRefusal(refusal);
      this.close(CloseCode.tryAgainLater, 'redis unavailable');
    } finally {
      this.running = false;
      // A fresh empty array: the drained one keeps the room its longest burst needed.
      if (this.queue.length === 0) this.queue = [];
      // Also after a close: a paused socket would never read the agent's close reply, and the
      // connection (and its host's lease) would linger until ws's closing timeout.
      if (this.closed || this.socket.bufferedAmount <= OUTPUT_SOFT_LIMIT) this.socket.resume();
      else this.awaitCatchUp();
    }
  }

  /**
   * The agent does not read what it is sent: stop reading it (it cannot make the collector hold
   * more), and drop it if it has not caught up within two heartbeats — like Redis's
   * client-output-buffer-limit.
   */
  private awaitCatchUp(): void {
    if (this.catchUpTimer) return;
    const since = Date.now();
    const limitMs = 2 * this.ctx.heartbeatSeconds * 1000;
    this.catchUpTimer = setInterval(() => {
      if (this.closed || this.socket.bufferedAmount <= OUTPUT_SOFT_LIMIT) {
        clearInterval(this.catchUpTimer);
        this.catchUpTimer = undefined;
        this.socket.resume();
      } else if (Date.now() - since > limitMs) {
        clearInterval(this.catchUpTimer);
        this.catchUpTimer = undefined;
        this.dropUnreading();
      }
    }, 50);
    this.catchUpTimer.unref();
  }

  private dropUnreading(): void {
    this.log.warn(
      { buffered: this.socket.bufferedAmount },
      'agent does not read what the collector sends: dropping it',
    );
    this.ctx.metrics.agentsDropped.inc({ reason: 'not_reading' });
    this.terminate();
  }

  private refuse(type: string): void {
    this.ctx.metrics.frames.inc({ type, result: 'refused' });
  }

  private async handle(received: Received): Promise<void> {
    if (received.binary) {
      this.refuse('binary');
      return this.fail('bad_frame', 'frames must be JSON text, not binary');
    }
    const parsed = await this.ctx.frames.read(received.data, this.ctx.limits);
    // A big frame was parsed in the worker meanwhile: a connection closed since applies nothing
    // more (its agent resends what was not acked).
    if (this.closed) return;
    if (!parsed.ok) {
      this.refuse('invalid');
      return this.fail('bad_frame', parsed.message);
    }
    const frame = parsed.frame;
    if (frame.type === 'hello') {
      return this.hello(frame.hello, frame.problem);
    }
    if (!this.claim) {
      this.refuse(frame.type);
      this.ctx.metrics.upgradesRejected.inc({ reason: 'hello_required' });
      return this.fail('hello_required', `a hello must come before any ${frame.type} frame`);
    }
    if (frame.type === 'status') return this.status(this.claim, frame.status);
    return frame.type === 'snapshot' ? this.snapshot(this.claim, frame) : this.events(this.claim, frame);
  }

  private async hello(hello: HelloFrame | undefined, problem: string | undefined): Promise<void> {
    const reject = (code: ErrorCode, reason: UpgradeRejection, message: string) => {
      this.refuse('hello');
      this.ctx.metrics.upgradesRejected.inc({ reason });
      this.fail(code, message);
    };
    if (this.claim) return reject('bad_hello', 'bad_hello', 'hello was already sent on this connection');
    if (!hello) return reject('bad_hello', 'bad_hello', `invalid hello: ${problem ?? 'invalid'}`);
    const { farm, refusal } = admit(this.ctx.farms(), this, hello.host, { kind: 'hello', farm: hello.farm });
    if (refusal) {
      this.refuse('hello');
      return this.refuseAdmission(refusal);
    }
    this.hostKeyHash = hello.hostKey === undefined ? undefined : sha256Hex(hello.hostKey);
    const claim: HostClaim = {
      host: normalizeHost(hello.host),
      owner: this.id,
      stream: hello.stream,
      epoch: await this.ctx.epochs.epoch(farm.id),
    };
    let taken = await this.take(claim, hello.agent);
    if (taken?.result.kind === 'epoch') {
      claim.epoch = await this.ctx.epochs.check(farm.id);
      taken = await this.take(claim, hello.agent);
    }
    if (!taken) return this.farmGone();
    const { result } = taken;
    if (result.kind === 'full') return reject('forbidden', 'max_hosts', farmFull(taken.farm, result.cap));
    if (result.kind === 'bound') return this.refuseBound(taken.farm.id, claim.host);
    if (result.kind !== 'ok') throw new Error('the farm epoch changed twice during one hello');
    if (this.closed) return;
    this.renewedAt = Date.now();
    this.claim = claim;
    this.agent = hello.agent;
    if (taken.farm.hostBinding === 'key' && this.hostKeyHash === undefined) this.warnKeyless(taken.farm.id, claim.host);
    this.ctx.metrics.frames.inc({ type: 'hello', result: 'applied' });
    this.ctx.claimed(this);
    this.log.info({ ack: result.ack, agent: hello.agent }, 'agent connected');
    this.send({
      type: 'welcome',
      ack: result.ack,
      heartbeatSeconds: this.ctx.heartbeatSeconds,
      limits: this.ctx.limits,
      features: [FEATURES.status],
    });
  }

  /**
   * Redis answered that this connection's epoch is not the farm's (its data was lost or recreated):
   * reads the farm's epoch now and takes the host again under it. A check that finds the epoch
   * changed has the agent server mark the farm's connections (this one too) and queue them to
   * resend; this one does not wait for its turn.
   */
  private async epochLost(): Promise<void> {
    await this.reclaim(await this.ctx.epochs.check(this.farmId));
  }

  /**
   * Takes the host again under the farm's epoch `epoch`, then asks for a snapshot: once per epoch,
   * whoever asks (the connection itself or the agent server), each waiting for the same re-take.
   */
  reclaim(epoch: string): Promise<void> {
    const claim = this.claim;
    if (!claim || this.closed || !this.ctx.farms().get(this.farmId)) return Promise.resolve();
    if (claim.epoch !== epoch) {
      claim.epoch = epoch;
      this.reclaimed = this.retake(claim).catch((err: unknown) => {
        // Redis may have run the re-take and only its answer was lost: the host would look claimed
        // while its agent was never asked for its state. Closing makes the agent reconnect and send
        // a snapshot; a resync is never left undone.
        this.log.warn(
          { err },
          'could not take the host again after the farm data was lost: closing so the agent resends',
        );
        this.close(CloseCode.tryAgainLater, 'resync failed');
      });
    }
    return this.reclaimed;
  }

  private async retake(claim: HostClaim): Promise<void> {
    const taken = await this.take(claim, this.agent);
    if (!taken) return;
    if (taken.result.kind === 'full') return this.fail('forbidden', farmFull(taken.farm, taken.result.cap));
    // Redis lost the binding with its data, and another key bound the host first.
    if (taken.result.kind === 'bound') return this.refuseBound(taken.farm.id, claim.host);
    if (taken.result.kind === 'ok') this.resync(true);
  }

  /** A frame of a farm that a reload removed (the reload closes its connections; this is the backstop). */
  private farmGone(): void {
    this.fail('forbidden', `farm ${this.farmId} is no longer configured`);
  }

  /**
   * The hello script for this connection, under the farm's configuration now (its host binding
   * too); undefined when the farm is gone.
   */
  private async take(
    claim: HostClaim,
    agent: string | undefined,
  ): Promise<{ result: HelloResult; farm: FarmConfig } | undefined> {
    const engine = this.ctx.engine.farm(this.farmId);
    if (!engine) return undefined;
    const binding: HelloBinding =
      engine.config.hostBinding === 'key' ? { mode: 'key', keyHash: this.hostKeyHash } : { mode: 'none' };
    return { result: await engine.agentHello(claim, agent, binding), farm: engine.config };
  }

  private async snapshot(claim: HostClaim, frame: ReadSnapshot): Promise<void> {
    const engine = this.ctx.engine.farm(this.farmId);
    if (!engine) return this.farmGone();
    const result = await this.timed(() => engine.applySnapshot(claim, frame.seq, frame.sessions));
    // A snapshot a farm quota refused whole did not bring the host's state in: the host still owes
    // one (its next snapshot), and a farm being rebuilt stays withheld rather than shown exact.
    const refusedWhole =
      (result.kind === 'ok' || result.kind === 'gap') &&
      (result.farmQuota.sessions.includes(frame.seq) || result.farmQuota.newUsers.includes(frame.seq));
    if ((result.kind === 'ok' || result.kind === 'gap') && !refusedWhole) {
      this.statePaid();
      this.stateEpoch = claim.epoch;
      if (this.rebuilding) await this.rebuildDone(claim);
    }
    await this.answer('snapshot', result, frame.rejected, frame.sessions.users.length, engine.config);
  }

  private async events(claim: HostClaim, frame: ParsedEvents): Promise<void> {
    const engine = this.ctx.engine.farm(this.farmId);
    if (!engine) return this.farmGone();
    const result = await this.timed(() => engine.applyEvents(claim, frame.events));
    await this.answer('events', result, frame.rejected, frame.events.length, engine.config);
  }

  /** The agent's source health: kept for the host, not answered (it has no seq). */
  private async status(claim: HostClaim, status: StatusFrame): Promise<void> {
    const engine = this.ctx.engine.farm(this.farmId);
    if (!engine) return this.farmGone();
    const result = await engine.reportStatus(claim, status);
    if (result === 'superseded') {
      this.refuse('status');
      return this.superseded();
    }
    if (result === 'epoch') {
      this.refuse('status');
      return this.epochLost();
    }
    this.ctx.metrics.frames.inc({ type: 'status', result: 'applied' });
  }

  private async timed(apply: () => Promise<ApplyResult>): Promise<ApplyResult> {
    const end = this.ctx.metrics.applyDuration.startTimer();
    try {
      const result = await apply();
      // The farm's budget counts the time its own script held Redis, not the time its frame waited
      // behind other farms' scripts: a calm farm is never charged for a flooding one. Settled with
      // the frame's reservation once the frame is done (runQueue).
      this.scriptMs += result.scriptMs ?? 0;
      return result;
    } finally {
      end();
    }
  }

  /**
   * The rejections of a frame's items refused over the farm's quotas, counted and logged
   * (rate-limited, per farm). A snapshot refused whole counts all the sessions it listed.
   */
  private overQuota(type: string, result: ApplyResult, farm: FarmConfig, items: number): Rejection[] {
    if (result.kind !== 'ok' && result.kind !== 'gap') return [];
    const rejected: Rejection[] = [];
    const refusals: Array<[FarmQuotaRefusal, number[]]> = [
      ['sessions', result.farmQuota.sessions],
      ['new_users', result.farmQuota.newUsers],
    ];
    for (const [quota, seqs] of refusals) {
      if (seqs.length === 0) continue;
      const reason = quotaReason(farm, quota);
      for (const seq of seqs) rejected.push({ seq, reason });
      this.ctx.metrics.farmQuotaRefused.inc(
        { farm: this.farmId, reason: quota },
        type === 'snapshot' ? items : seqs.length,
      );
      if (this.quotaRefusals) this.quotaRefusals.refused(quota, this.farmId, type, reason);
      else this.log.warn({ quota }, reason);
    }
    return rejected;
  }

  private async answer(
    type: string,
    result: ApplyResult,
    rejections: Rejection[],
    items: number,
    farm: FarmConfig,
  ): Promise<void> {
    const m = this.ctx.metrics;
    if (result.kind === 'superseded') {
      this.refuse(type);
      return this.superseded();
    }
    if (result.kind === 'epoch') {
      // Not acked: the agent keeps the frame, and the resync that follows repairs the host.
      this.refuse(type);
      return this.epochLost();
    }
    const newly = (seq: number) => seq > result.previousSeq && seq <= result.lastSeq;
    const rejected = rejections.filter((rejection) => newly(rejection.seq));
    for (const seq of result.hostFull) {
      rejected.push({ seq, reason: `host already holds the maximum of ${this.ctx.limits.maxSessions} sessions` });
    }
    const overQuota = this.overQuota(type, result, farm, items);
    rejected.push(...overQuota);
    rejected.sort((a, b) => a.seq - b.seq);
    // A snapshot over a quota is refused whole: none of its sessions was applied.
    const refusedWhole = type === 'snapshot' && overQuota.length > 0;
    if (refusedWhole) {
      m.events.inc({ result: 'rejected' }, items);
    } else if (type === 'snapshot') {
      const applied = result.applied > 0;
      m.events.inc({ result: applied ? 'applied' : 'duplicate' }, items);
      if (applied && rejected.length > 0) m.events.inc({ result: 'rejected' }, rejected.length);
    } else {
      const rejectedEvents = new Set(rejected.map((rejection) => rejection.seq)).size;
      m.events.inc({ result: 'applied' }, result.applied - rejectedEvents);
      m.events.inc({ result: 'rejected' }, rejectedEvents);
      m.events.inc({ result: 'duplicate' }, result.duplicates);
    }
    m.frames.inc({
      type,
      result: refusedWhole
        ? 'refused'
        : result.applied > 0
          ? 'applied'
          : result.kind === 'gap'
            ? 'refused'
            : 'duplicate',
    });
    this.send(
      rejected.length > 0
        ? { type: 'ack', seq: result.lastSeq, rejected: listed(rejected) }
        : { type: 'ack', seq: result.lastSeq },
    );
    if (result.kind === 'gap') {
      this.log.info({ lastSeq: result.lastSeq }, 'seq gap: asking for a snapshot');
      this.resync();
    }
  }
}

/** Why a session over a farm quota was refused, as its rejection says. */
function quotaReason(farm: FarmConfig, quota: FarmQuotaRefusal): string {
  const quotas = farmQuotas(farm);
  return quota === 'sessions'
    ? `farm ${farm.id} holds its maximum of ${quotas.maxSessions} sessions (maxSessions)`
    : `farm ${farm.id} took its maximum of ${quotas.maxNewUsersPerMinute} new users in a minute (maxNewUsersPerMinute)`;
}

/** The error a hello gets from a farm at one of its host limits. */
function farmFull(farm: FarmConfig, cap: 'hosts' | 'known'): string {
  return cap === 'hosts'
    ? `farm ${farm.id} already has its maximum of ${farm.maxHosts} hosts`
    : `farm ${farm.id} already knows its maximum of ${farm.maxKnownHosts} hosts, retired ones included (forget-host frees them)`;
}

/**
 * The rejections an ack lists: the lowest seqs, ids cut short. All of them are counted in
 * `events_total{result="rejected"}`; the list only tells the agent what to log, and must not make
 * an ack of a bad frame larger than the frame (the agent refuses large frames).
 */
function listed(rejected: Rejection[]): Rejection[] {
  return rejected
    .slice(0, MAX_LISTED_REJECTIONS)
    .map((rejection) =>
      rejection.id !== undefined && rejection.id.length > MAX_REJECTION_ID_CHARS
        ? { ...rejection, id: rejection.id.slice(0, MAX_REJECTION_ID_CHARS) }
        : rejection,
    );
}
