/**
 * The typed face of the Lua scripts: builds their keys and arguments, and turns their return
 * codes into results. A Redis failure rejects the promise; it is never mistaken for an answer.
 */
import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { canonicalSession, type ParsedEvent, type Session } from '@rasmon/protocol';
import { ScriptError } from './errors.js';
import { farmKeyList, hostKeyList, type RedisKeys } from './redis-keys.js';

/** The farm settings every script needs, from the farm's configuration. */
export interface FarmRules {
  id: string;
  seats: number;
  countDisconnected: boolean;
  overuseGraceStartedAt?: number;
}

/** Who is asking: one agent connection for one host. */
export interface HostClaim {
  farm: FarmRules;
  host: string;
  /** The connection's id, unique across collectors. */
  owner: string;
  stream: string;
  epoch: string;
}

export type HelloResult = { kind: 'ok'; ack: number } | { kind: 'full' } | { kind: 'epoch' };

export type ApplyResult =
  | {
      kind: 'ok' | 'gap';
      previousSeq: number;
      lastSeq: number;
      applied: number;
      duplicates: number;
      /** Seqs of upserts skipped because their host already held `maxSessions` connections. */
      hostFull: number[];
    }
  | { kind: 'epoch' }
  | { kind: 'superseded' };

export type RenewResult = 'ok' | 'superseded' | 'epoch';

export interface TickResult {
  epoch: string;
  /** The epoch did not exist: this call created it. */
  hostsDue: string[];
}

function farmArgs(farm: FarmRules): string[] {
  return [String(farm.seats), farm.countDisconnected ? '1' : '0', farm.overuseGraceStartedAt?.toString() ?? ''];
}

/** Packs event items for applyFrame: `[seq, 'u', json] | [seq, 'e', id] | [seq, 'x']`. */
function packEvents(events: readonly ParsedEvent[]): string {
  return JSON.stringify(
    events.map((event) => {
      if (event.op === 'upsert') return [event.seq, 'u', canonicalSession(event.session)];
      if (event.op === 'end') return [event.seq, 'e', event.id];
      return [event.seq, 'x'];
    }),
  );
}

function unexpected(script: string, reply: unknown): never {
  throw new ScriptError(`${script} answered outside its contract: ${JSON.stringify(reply)}`);
}

export class LicenseEngine {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keys: RedisKeys,
    /** Lease length: at most 3 × heartbeatSeconds (docs/design.md §2 rule 10). */
    private readonly leaseMs: number,
    /** Most connections one host may hold (limits.maxSessions). */
    private readonly maxSessions: number,
  ) {}

  private hostKeys(farm: string, host: string): string[] {
    return [...farmKeyList(this.keys.farm(farm)), ...hostKeyList(this.keys.host(farm, host))];
  }

  /** A fresh random epoch value. */
  static newEpoch(): string {
    return randomBytes(12).toString('hex');
  }

  async hello(claim: HostClaim, agent: string | undefined, maxHosts: number): Promise<HelloResult> {
    const host = claim.host.toLowerCase();
    const reply = await this.redis.rasmonHello(
      ...this.hostKeys(claim.farm.id, host),
      claim.epoch,
      claim.owner,
      host,
      claim.stream,
      agent ?? '',
      this.leaseMs,
      maxHosts,
      ...farmArgs(claim.farm),
    );
    const [code, ack] = reply as [string, number?];
    if (code === 'ok' && typeof ack === 'number') return { kind: 'ok', ack };
    if (code === 'full' || code === 'epoch') return { kind: code };
    return unexpected('hello', reply);
  }

  applyEvents(claim: HostClaim, events: readonly ParsedEvent[]): Promise<ApplyResult> {
    return this.apply(claim, 'events', packEvents(events), '');
  }

  applySnapshot(claim: HostClaim, seq: number, sessions: readonly Session[]): Promise<ApplyResult> {
    return this.apply(claim, 'snapshot', JSON.stringify(sessions.map(canonicalSession)), String(seq));
  }

  private async apply(claim: HostClaim, type: string, payload: string, seq: string): Promise<ApplyResult> {
    const host = claim.host.toLowerCase();
    const reply = (await this.redis.rasmonApplyFrame(
      ...this.hostKeys(claim.farm.id, host),
      claim.epoch,
      claim.owner,
      host,
      claim.stream,
      ...farmArgs(claim.farm),
      this.leaseMs,
      type,
      payload,
      seq,
      this.maxSessions,
    )) as unknown[];
    const code = reply[0];
    if (code === 'epoch' || code === 'superseded') return { kind: code };
    if ((code === 'ok' || code === 'gap') && reply.length === 6) {
      const [previousSeq, lastSeq, applied, duplicates] = reply.slice(1, 5) as number[];
      const hostFull = reply[5] as number[];
      return { kind: code, previousSeq: previousSeq!, lastSeq: lastSeq!, applied: applied!, duplicates: duplicates!, hostFull };
    }
    return unexpected('applyFrame', reply);
  }

  async renew(claim: HostClaim): Promise<RenewResult> {
    const host = claim.host.toLowerCase();
    const reply = await this.redis.rasmonRenewLease(
      ...this.hostKeys(claim.farm.id, host),
      claim.epoch,
      claim.owner,
      host,
      this.leaseMs,
      ...farmArgs(claim.farm),
    );
    if (reply === 'ok' || reply === 'superseded' || reply === 'epoch') return reply;
    return unexpected('renewLease', reply);
  }

  /** Releases the host if this connection still owns it; returns whether it did. */
  async release(claim: HostClaim): Promise<boolean> {
    const host = claim.host.toLowerCase();
    const reply = await this.redis.rasmonRelease(
      ...this.hostKeys(claim.farm.id, host),
      claim.owner,
      host,
      ...farmArgs(claim.farm),
    );
    if (reply === 'ok' || reply === 'superseded') return reply === 'ok';
    return unexpected('release', reply);
  }

  /** Farm-wide time-driven work; returns the farm's epoch (creating one if the data was lost). */
  async tick(farm: FarmRules, hostRetireMs: number): Promise<TickResult> {
    const reply = await this.redis.rasmonTick(
      ...farmKeyList(this.keys.farm(farm.id)),
      LicenseEngine.newEpoch(),
      ...farmArgs(farm),
      hostRetireMs,
    );
    const [epoch, hostsDue] = reply as [unknown, unknown];
    if (typeof epoch !== 'string' || !Array.isArray(hostsDue)) return unexpected('tick', reply);
    return { epoch, hostsDue: hostsDue as string[] };
  }

  /** Lease lapse, retirement and re-indexing of one host, each only when due. */
  async maintainHost(farm: FarmRules, host: string, hostRetireMs: number): Promise<{ lapsed: boolean; retired: boolean }> {
    const name = host.toLowerCase();
    const reply = await this.redis.rasmonMaintainHost(
      ...this.hostKeys(farm.id, name),
      name,
      hostRetireMs,
      ...farmArgs(farm),
    );
    const [lapsed, retired] = reply;
    return { lapsed: lapsed === 1, retired: retired === 1 };
  }
}
