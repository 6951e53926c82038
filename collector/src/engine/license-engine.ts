/**
 * The typed face of the Lua scripts: builds their keys and arguments, and turns their return
 * codes into results. A Redis failure rejects the promise; it is never mistaken for an answer.
 * The farm's rules every script takes are looked up here, in the farm directory, not by callers.
 */
import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { normalizeHost, type ParsedEvent, type Session, type StatusFrame } from '@rasmon/protocol';
import { ScriptError } from './errors.js';
import type { MetaField, RedisKeys } from './redis-schema.js';
import { CONFIG_DEFAULTS, type FarmConfig } from '../config/config.js';
import { MonthUsers, type SweepResult } from './month-users.js';
import type { FarmDirectory, FarmRules } from '../config/farm-directory.js';
import { farmQuotas } from '../config/farm-quotas.js';
import {
  joinItems,
  packedSnapshot,
  scriptCalls,
  type FrameItems,
  type HelloBinding,
  type HostIdentity,
  type PackedSnapshot,
  type ScriptCall,
  type Settings,
  type SnapshotSlice,
} from './script-args.js';
import { runScript } from './scripts.js';

/**
 * Who is asking: one agent connection for one host. Identity only; the farm's rules are the
 * engine's to look up, as the farm directory gives them at the time of the call.
 */
export type HostClaim = HostIdentity;

export type { HelloBinding };

/**
 * `full`: `hosts` when the farm has maxHosts hosts that are not retired, `known` when it knows
 * maxKnownHosts. `bound`: the host is bound to another host key (docs/design.md §6).
 */
export type HelloResult =
  { kind: 'ok'; ack: number } | { kind: 'full'; cap: 'hosts' | 'known' } | { kind: 'bound' } | { kind: 'epoch' };

export type ApplyResult =
  | {
      kind: 'ok' | 'gap';
      previousSeq: number;
      lastSeq: number;
      applied: number;
      duplicates: number;
      /** Seqs of upserts skipped because their host already held `maxSessions` connections. */
      hostFull: number[];
      /**
       * Over the farm's quotas (config/farm-quotas.ts): seqs of upserts skipped, or the seq of a
       * snapshot refused whole (the host keeps what it held), because the farm held its
       * `maxSessions` (`sessions`) or its user would have come new beyond `maxNewUsersPerMinute`
       * (`newUsers`).
       */
      farmQuota: { sessions: number[]; newUsers: number[] };
      /**
       * How long the script ran, by Redis's clock (ms): what the farm's script-time budget counts,
       * without the time the frame waited behind other farms' scripts.
       */
      scriptMs: number;
    }
  /**
   * Not applied: the farm's epoch is not the connection's, or another connection took the host.
   * `scriptMs`: the script time the slices of a big snapshot ran before one of them found it.
   */
  | { kind: 'epoch'; scriptMs?: number }
  | { kind: 'superseded'; scriptMs?: number };

export type RenewResult = 'ok' | 'superseded' | 'epoch';

/**
 * Items (ends, then sessions) one script of a big snapshot applies: a snapshot listing more sessions
 * is applied in slices of this many (beginSnapshot.lua, snapshotSlice.lua), so that no script of one
 * farm's big snapshot holds Redis, and every other farm's frames behind it, for long. A 2,000-session
 * snapshot whose every session changed took about 86 ms of script whole, about 40 µs an item
 * (docs/performance.md, "One farm flooding"): a slice of 200 holds Redis a few milliseconds.
 */
export const SNAPSHOT_SLICE_ITEMS = 200;

/** Longest a host asked for its state after a data loss holds the farm's rebuild open (ms). */
export const REBUILD_MAX_MS = 60_000;
/**
 * How long a farm whose data was lost reads as rebuilding at least, from the round that stored its
 * new epoch (tick.lua's mark of the farm's own): the time every collector's round (each second) has
 * to see the new epoch and mark the hosts it asks to resend. The hosts' marks hold it longer while
 * they owe their state.
 */
export const UNMARKED_REBUILD_MS = 5_000;

export interface TickResult {
  epoch: string;
  /** Hosts due for maintainHost. */
  hostsDue: string[];
  /** Retired hosts not seen for forgetHostsAfterDays, due for forgetHost. */
  hostsToForget: string[];
}

export type ForgetResult = { kind: 'forgotten'; wasLive: boolean } | { kind: 'unknown' } | { kind: 'kept' };

function unexpected(script: string, reply: unknown): never {
  throw new ScriptError(`${script} answered outside its contract: ${JSON.stringify(reply)}`);
}

/** What every farm's engine shares: the Redis client, the key names and the collector-wide settings. */
interface EngineParts {
  redis: Redis | Cluster;
  keys: RedisKeys;
  /** Lease length: at most 3 × heartbeatSeconds (docs/design.md §2 rule 10). */
  leaseMs: number;
  /** Most connections one host may hold (limits.maxSessions). */
  maxSessions: number;
  /** The distinct users of each month, recorded after each applied frame. */
  monthUsers: MonthUsers;
  /** Items per script of a big snapshot ({@link SNAPSHOT_SLICE_ITEMS}). */
  sliceItems: number;
}

export class LicenseEngine {
  private readonly parts: EngineParts;

  constructor(
    redis: Redis | Cluster,
    keys: RedisKeys,
    /**
     * The farms of the configuration loaded now (a reload replaces the directory): the rules of a
     * farm are looked up here, at each call for it, so a reload applies from the next call on.
     */
    private readonly farms: () => FarmDirectory,
    leaseMs: number,
    maxSessions: number,
    /** `distinctUsers.retentionMonths` of the configuration loaded now. */
    distinctUserMonths: () => number = () => CONFIG_DEFAULTS.distinctUserMonths,
    sliceItems = SNAPSHOT_SLICE_ITEMS,
  ) {
    if (!Number.isInteger(sliceItems) || sliceItems < 1)
      throw new RangeError(`sliceItems must be a positive integer, not ${sliceItems}`);
    this.parts = {
      redis,
      keys,
      leaseMs,
      maxSessions,
      monthUsers: new MonthUsers(redis, keys, distinctUserMonths),
      sliceItems,
    };
  }

  /**
   * Applies `distinctUsers.retentionMonths` now to the farm's month sets already written
   * (MonthUsers.sweep): older months deleted, the others' expiry set from it.
   */
  sweepMonthUsers(farm: string): Promise<SweepResult> {
    return this.parts.monthUsers.sweep(farm);
  }

  /** Redis lost the farm's data: the month's users of its rebuilding snapshots are written again (MonthUsers.forget). */
  forgetMonthUsersWritten(farm: string): void {
    this.parts.monthUsers.forget(farm);
  }

  /** A fresh random epoch value. */
  static newEpoch(): string {
    return randomBytes(12).toString('hex');
  }

  /** The engine of a farm under its configuration now; undefined when the farm is not configured. */
  farm(id: string): FarmEngine | undefined {
    const farms = this.farms();
    const config = farms.get(id);
    const rules = farms.rules(id);
    return config && rules ? new FarmEngine(this.parts, config, rules) : undefined;
  }

  /**
   * The farm's data was lost: these hosts, asked for their state again, count as not yet resent
   * (the farm's series are withheld meanwhile) until {@link rebuilt} or `REBUILD_MAX_MS` from now.
   */
  async markRebuilding(farm: string, hosts: readonly string[]): Promise<void> {
    if (hosts.length === 0) return;
    const until = Date.now() + REBUILD_MAX_MS;
    const key = this.parts.keys.rebuilding(farm);
    // The farm's own mark (tick.lua) stays beside them until it lapses: another collector's hosts
    // are marked only when that collector finds the loss, and until then they must not read as
    // resent once this collector's have.
    await this.parts.redis
      .multi()
      .zadd(key, ...hosts.flatMap((host) => [until, normalizeHost(host)]))
      .pexpire(key, REBUILD_MAX_MS)
      .exec();
  }

  /**
   * The host resent its state (or its connection ended): it no longer holds the farm's rebuild open.
   * The farm's version moves with it, as with every change to what its readers show (the farm
   * document is re-read by version): sent together, but not as one transaction, so that a Redis at
   * `maxmemory`, which refuses the version's HINCRBY, still lets the mark go.
   */
  async rebuilt(farm: string, host: string): Promise<void> {
    const redis = this.parts.redis;
    const [removed] = await Promise.allSettled([
      redis.zrem(this.parts.keys.rebuilding(farm), normalizeHost(host)),
      // Refused only by a Redis at maxmemory: the farm document then shows the end up to a second late.
      redis.hincrby(this.parts.keys.farm(farm).meta, 'version' satisfies MetaField, 1),
    ]);
    if (removed.status === 'rejected') throw removed.reason;
  }

  /**
   * Releases a host claimed under farm id `id` (spelled as it was then) if this connection still owns
   * it; returns whether it did. A farm the last reload removed or respelled is released under the
   * rules it had (FarmDirectory.releaseRules); an unknown one is not.
   */
  async release(id: string, claim: HostClaim): Promise<boolean> {
    const rules = this.farms().releaseRules(id);
    if (!rules) return false;
    const reply = await runScript(this.parts.redis, scriptCalls.release(this.parts.keys, rules, identity(claim)));
    if (reply === 'ok' || reply === 'superseded') return reply === 'ok';
    return unexpected('release', reply);
  }
}

function identity(claim: HostClaim): HostIdentity {
  return { host: normalizeHost(claim.host), owner: claim.owner, stream: claim.stream, epoch: claim.epoch };
}

/** The scripts of one farm, under the rules its configuration gave when it was looked up. */
/**
 * The users a frame's applied sessions name (already normalized by the frame's parser, docs/design.md
 * §2 rule 4), leaving out the items the script refused, by seq.
 */
/**
 * The users of the sessions the script applied: an upsert above the host's previous seq and up to
 * the last it applied (not a duplicate, not past a gap) and refused by no cap nor held back for a
 * retired host's snapshot; a snapshot newer than the previous seq and not refused.
 */
function frameUsers(
  frame: FrameItems,
  previousSeq: number,
  lastSeq: number,
  notApplied: ReadonlySet<number>,
): string[] {
  const applied = (seq: number) => seq > previousSeq && seq <= lastSeq && !notApplied.has(seq);
  if (frame.type === 'snapshot') return applied(frame.seq) ? frame.sessions.users : [];
  return frame.events.flatMap((event) => (event.op === 'upsert' && applied(event.seq) ? [event.session.user] : []));
}

export class FarmEngine {
  constructor(
    private readonly parts: EngineParts,
    readonly config: FarmConfig,
    private readonly rules: FarmRules,
  ) {}

  private run(call: (keys: RedisKeys, rules: FarmRules) => ScriptCall): Promise<unknown> {
    return runScript(this.parts.redis, call(this.parts.keys, this.rules));
  }

  /**
   * Takes the host for a source without an agent (a broker source's pseudo-host): no binding.
   * `leaseMs`: a lease of another length than an agent's (polled less often).
   */
  async hello(
    claim: HostClaim,
    agent: string | undefined,
    leaseMs = this.parts.leaseMs,
  ): Promise<Exclude<HelloResult, { kind: 'bound' }>> {
    const result = await this.runHello(claim, agent, leaseMs, { mode: 'none' });
    return result.kind === 'bound' ? unexpected('hello', ['bound']) : result;
  }

  /**
   * Takes the host for an agent's connection, checking and setting the host's binding as `binding`
   * asks (docs/design.md §6, "Host binding").
   */
  agentHello(claim: HostClaim, agent: string | undefined, binding: HelloBinding): Promise<HelloResult> {
    return this.runHello(claim, agent, this.parts.leaseMs, binding);
  }

  /** The hello script; the farm's host caps come from its configuration. */
  private async runHello(
    claim: HostClaim,
    agent: string | undefined,
    leaseMs: number,
    binding: HelloBinding,
  ): Promise<HelloResult> {
    const caps = { maxHosts: this.config.maxHosts, maxKnownHosts: this.config.maxKnownHosts };
    const reply = await this.run((keys, rules) =>
      scriptCalls.hello(keys, rules, identity(claim), agent, leaseMs, caps, binding),
    );
    const [code, detail] = reply as [string, (number | string)?];
    if (code === 'ok' && typeof detail === 'number') return { kind: 'ok', ack: detail };
    if (code === 'full' && (detail === 'hosts' || detail === 'known')) return { kind: 'full', cap: detail };
    if (code === 'epoch' || code === 'bound') return { kind: code };
    return unexpected('hello', reply);
  }

  applyEvents(claim: HostClaim, events: readonly ParsedEvent[]): Promise<ApplyResult> {
    return this.apply(claim, { type: 'events', events });
  }

  /**
   * `sessions` as parsed, or already packed where the frame was parsed (script-args.ts,
   * PackedSnapshot); `leaseMs` as for {@link hello}.
   */
  applySnapshot(
    claim: HostClaim,
    seq: number,
    sessions: readonly Session[] | PackedSnapshot,
    leaseMs = this.parts.leaseMs,
  ): Promise<ApplyResult> {
    const packed = 'items' in sessions ? sessions : packedSnapshot(sessions);
    if (packed.items.length > this.parts.sliceItems) return this.applyInSlices(claim, seq, packed, leaseMs);
    return this.apply(claim, { type: 'snapshot', seq, sessions: packed }, leaseMs);
  }

  private settings(leaseMs: number): Settings {
    const quotas = farmQuotas(this.config);
    return {
      leaseMs,
      maxSessions: this.parts.maxSessions,
      farmMaxSessions: quotas.maxSessions,
      maxNewUsersPerMinute: quotas.maxNewUsersPerMinute,
    };
  }

  /**
   * A big snapshot: its quotas checked and its ends worked out whole (beginSnapshot.lua), then its
   * ends and its sessions applied a slice at a time (snapshotSlice.lua), each slice a script of its
   * own, so that other farms' frames queued meanwhile run between them. The answer is the one
   * applyFrame.lua would give the snapshot. A slice that finds the epoch lost or the host taken
   * ends it there, as for any frame: the snapshot is not acked, and the host's next snapshot (the
   * agent's resend, or its next connection's) replaces what the slices before applied.
   */
  private async applyInSlices(
    claim: HostClaim,
    seq: number,
    packed: PackedSnapshot,
    leaseMs: number,
  ): Promise<ApplyResult> {
    const who = identity(claim);
    const settings = this.settings(leaseMs);
    await this.othersFirst();
    const begun = (await this.run((keys, rules) =>
      scriptCalls.beginSnapshot(keys, rules, who, settings, seq, packed),
    )) as unknown[];
    const code = begun[0];
    if (code === 'epoch' || code === 'superseded') return { kind: code };
    const noneRefused = { sessions: [], newUsers: [] };
    if (code === 'duplicate' && begun.length === 3) {
      const [previousSeq, micros] = begun.slice(1) as number[];
      return {
        kind: 'ok',
        previousSeq: previousSeq!,
        lastSeq: previousSeq!,
        applied: 0,
        duplicates: 1,
        hostFull: [],
        farmQuota: noneRefused,
        scriptMs: micros! / 1000,
      };
    }
    if (code !== 'begun' || begun.length !== 6) return unexpected('beginSnapshot', begun);
    const [, previousSeq, refusal, correcting, ended, beginMicros] = begun as [
      string,
      number,
      string,
      number,
      string[],
      number,
    ];
    const accepted = refusal === '';
    const size = this.parts.sliceItems;
    // users: a sessions slice's users, the month's distinct users once it is applied.
    const slices: Array<Pick<SnapshotSlice, 'part' | 'items'> & { users?: string[] }> = [];
    for (let i = 0; i < ended.length; i += size)
      slices.push({ part: 'ends', items: JSON.stringify(ended.slice(i, i + size)) });
    if (accepted) {
      for (let i = 0; i < packed.items.length; i += size)
        slices.push({
          part: 'sessions',
          items: joinItems(packed.items, i, i + size),
          users: packed.users.slice(i, i + size),
        });
    }
    if (slices.length === 0) slices.push({ part: 'ends', items: '[]' });
    let micros = beginMicros;
    for (const [i, { users, ...slice }] of slices.entries()) {
      await this.othersFirst();
      const reply = (await this.run((keys, rules) =>
        scriptCalls.snapshotSlice(keys, rules, who, leaseMs, {
          ...slice,
          seq,
          correcting: correcting === 1,
          last: i === slices.length - 1,
          accepted,
        }),
      )) as unknown[];
      // The slices already run held Redis as long as any frame's script: the farm's budget counts them.
      if (reply[0] === 'epoch' || reply[0] === 'superseded') return { kind: reply[0], scriptMs: micros / 1000 };
      if (reply[0] !== 'ok' || typeof reply[1] !== 'number') return unexpected('snapshotSlice', reply);
      micros += reply[1];
      // Recorded slice by slice: a snapshot that stops part-way (its connection superseded) has its
      // applied sessions' users counted in the month like any others.
      if (users) await this.parts.monthUsers.record(this.config.id, users);
    }
    return {
      kind: 'ok',
      previousSeq,
      lastSeq: seq,
      applied: 1,
      duplicates: 0,
      hostFull: [],
      farmQuota: {
        sessions: refusal === 'sessions' ? [seq] : [],
        newUsers: refusal === 'newUsers' ? [seq] : [],
      },
      scriptMs: micros / 1000,
    };
  }

  /**
   * Resolves once Redis answered every command sent before it on the farm's connection (a read of
   * one of the farm's keys, so that in a Cluster it goes to the farm's node): called before each
   * script of a big snapshot, it lets the frames other farms sent while the snapshot's last script
   * ran go first. Redis answers the commands it read from a connection together, once it ran them
   * all; without it, another farm's frame that arrived while a slice ran was often read together
   * with the next slice (sent as soon as the one before was answered) and its answer waited for
   * that slice too: two of a flooding farm's scripts per frame of every other farm instead of the
   * rest of one (docs/performance.md, "One farm flooding"). One round trip per slice.
   */
  private async othersFirst(): Promise<void> {
    await this.parts.redis.exists(this.parts.keys.farm(this.config.id).meta);
  }

  private async apply(claim: HostClaim, frame: FrameItems, leaseMs = this.parts.leaseMs): Promise<ApplyResult> {
    const settings = this.settings(leaseMs);
    const reply = (await this.run((keys, rules) =>
      scriptCalls.applyFrame(keys, rules, identity(claim), settings, frame),
    )) as unknown[];
    const code = reply[0];
    if (code === 'epoch' || code === 'superseded') return { kind: code };
    if ((code === 'ok' || code === 'gap') && reply.length === 10) {
      const [previousSeq, lastSeq, applied, duplicates] = reply.slice(1, 5) as number[];
      const [hostFull, sessions, newUsers] = reply.slice(5, 8) as number[][];
      const micros = reply[8] as number;
      const waiting = reply[9] as number[];
      // Users of items the script refused (a full host, the farm's quotas) or held back (a retired
      // host's events) never had a session; nor those of duplicates or past a gap.
      const notApplied = new Set([...hostFull!, ...sessions!, ...newUsers!, ...waiting]);
      await this.parts.monthUsers.record(this.config.id, frameUsers(frame, previousSeq!, lastSeq!, notApplied));
      return {
        kind: code,
        previousSeq: previousSeq!,
        lastSeq: lastSeq!,
        applied: applied!,
        duplicates: duplicates!,
        hostFull: hostFull!,
        farmQuota: { sessions: sessions!, newUsers: newUsers! },
        scriptMs: micros / 1000,
      };
    }
    return unexpected('applyFrame', reply);
  }

  async renew(claim: HostClaim): Promise<RenewResult> {
    const reply = await this.run((keys, rules) =>
      scriptCalls.renewLease(keys, rules, identity(claim), this.parts.leaseMs),
    );
    if (reply === 'ok' || reply === 'superseded' || reply === 'epoch') return reply;
    return unexpected('renewLease', reply);
  }

  /** Keeps the agent's latest source status for its host. */
  async reportStatus(claim: HostClaim, status: StatusFrame): Promise<RenewResult> {
    const reply = await this.run((keys, rules) => scriptCalls.reportStatus(keys, rules, identity(claim), status));
    if (reply === 'ok' || reply === 'superseded' || reply === 'epoch') return reply;
    return unexpected('reportStatus', reply);
  }

  /**
   * Farm-wide time-driven work; returns the farm's epoch, creating one if the data was lost: with
   * `knownEpoch` (the epoch this collector read before), marked rebuilding at once (tick.lua).
   */
  async tick(hostRetireMs: number, forgetMs: number, knownEpoch?: string): Promise<TickResult> {
    const lost = { knownEpoch, unmarkedMs: UNMARKED_REBUILD_MS };
    const reply = await this.run((keys, rules) =>
      scriptCalls.tick(keys, rules, LicenseEngine.newEpoch(), hostRetireMs, forgetMs, lost),
    );
    const [epoch, hostsDue, hostsToForget] = reply as [unknown, unknown, unknown];
    if (typeof epoch !== 'string' || !Array.isArray(hostsDue) || !Array.isArray(hostsToForget))
      return unexpected('tick', reply);
    return { epoch, hostsDue: hostsDue as string[], hostsToForget: hostsToForget as string[] };
  }

  /**
   * Removes a host's keys and contributions: with forgetMs, only a retired host not seen for that
   * long; without, whatever its state.
   */
  async forgetHost(host: string, forgetMs?: number): Promise<ForgetResult> {
    const reply = (await this.run((keys, rules) =>
      scriptCalls.forgetHost(keys, rules, normalizeHost(host), forgetMs),
    )) as unknown[];
    if (reply[0] === 'forgotten') return { kind: 'forgotten', wasLive: reply[1] === 1 };
    if (reply[0] === 'unknown' || reply[0] === 'kept') return { kind: reply[0] };
    return unexpected('forgetHost', reply);
  }

  /**
   * Removes the host's binding to a host key (`rebind-host`): the next hello with a key binds the
   * host anew. Returns whether the host was bound.
   */
  async unbindHost(host: string): Promise<boolean> {
    const removed = await this.parts.redis.hdel(this.parts.keys.farm(this.config.id).bindings, normalizeHost(host));
    return removed === 1;
  }

  /** Lease lapse, retirement and re-indexing of one host, each only when due. */
  async maintainHost(host: string, hostRetireMs: number): Promise<{ lapsed: boolean; retired: boolean }> {
    const reply = (await this.run((keys, rules) =>
      scriptCalls.maintainHost(keys, rules, normalizeHost(host), hostRetireMs),
    )) as number[];
    const [lapsed, retired] = reply;
    return { lapsed: lapsed === 1, retired: retired === 1 };
  }
}

/**
 * The farm's day still open, as of `now` (Redis time, ms), as the peaks hash will hold it once the
 * day closes: the day-close rule is the scripts' alone (includes/day-record.lua). Undefined for a
 * farm that has no day yet.
 */
export async function readOpenDay(
  redis: Redis | Cluster,
  keys: RedisKeys,
  farm: FarmRules,
  now: number,
): Promise<{ day: number; record: string } | undefined> {
  const reply = await runScript(redis, scriptCalls.openDay(keys, farm, now));
  if (!Array.isArray(reply)) return unexpected('openDay', reply);
  if (reply.length === 0) return undefined;
  const [day, record] = reply as unknown[];
  if (typeof day !== 'string' || !/^\d+$/.test(day) || typeof record !== 'string') return unexpected('openDay', reply);
  return { day: Number(day), record };
}
