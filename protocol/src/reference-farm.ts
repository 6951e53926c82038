/**
 * The reference farm: the history-dependent rules (6 admissions, 7 peaks, 8 overuse grace, snapshot
 * corrections, docs/design.md §2 rule 10 host states) replayed item by item over `evaluateUsage`. Slow and obvious
 * on purpose; it is what the collector's Lua must agree with.
 */
import { evaluateUsage, type HostView, type Usage } from './license-model.js';
import { utcDay } from './license-state.js';
import { canonicalSession, normalizeHost, type Session } from './session.js';

interface HostRecord {
  live: boolean;
  retired: boolean;
  /** A snapshot has been applied since the host appeared or was retired. */
  synced: boolean;
  connections: Map<string, Session>;
}

export interface ReferenceFarmOptions {
  seats: number;
  countDisconnected?: boolean;
  /** docs/design.md §2 rule 8 seed: the grace start the RAS console shows. */
  overuseGraceStartedAt?: number;
}

export class ReferenceFarm {
  seats: number;
  countDisconnected: boolean;
  overuseAdmissions = 0;
  peakUsers = 0;
  peakUsersToday = 0;
  /** UTC day → highest users in use that day. */
  readonly dailyPeaks = new Map<string, number>();
  graceStartedAt: number | undefined;
  graceSeats: number | undefined;
  snapshotCorrections = 0;
  private day: string | undefined;
  private seedUsed: number | undefined;
  private readonly seed: number | undefined;
  private readonly hosts = new Map<string, HostRecord>();
  /** User → order in which it last started consuming (for `overLimit`). */
  private readonly consumingOrder = new Map<string, number>();
  private nextOrder = 0;

  constructor(options: ReferenceFarmOptions) {
    this.seats = options.seats;
    this.countDisconnected = options.countDisconnected ?? true;
    this.seed = options.overuseGraceStartedAt;
  }

  /** Rules 1-5 and 10 as of now. */
  usage(): Usage {
    return evaluateUsage({ seats: this.seats, countDisconnected: this.countDisconnected, hosts: this.hostViews() });
  }

  hostViews(): HostView[] {
    return [...this.hosts].map(([host, record]) => ({
      host,
      live: record.live,
      retired: record.retired,
      connections: [...record.connections.values()],
    }));
  }

  /**
   * The most recent `overuseUsers` users by the time they started consuming, oldest first: the
   * ones RAS would have made wait.
   */
  overLimit(): string[] {
    const overuse = this.usage().overuseUsers;
    if (overuse === 0) return [];
    const byOrder = [...this.consumingOrder].sort((a, b) => a[1] - b[1]).map(([user]) => user);
    return byOrder.slice(byOrder.length - overuse);
  }

  /** An agent's hello took the host: it is live (a retired host stays retired until its snapshot). */
  connect(host: string, nowMs: number): void {
    this.change(nowMs, () => {
      this.host(host).live = true;
    });
  }

  /** The host's lease ended: stale, its connections still count. */
  disconnect(host: string, nowMs: number): void {
    this.change(nowMs, () => {
      this.host(host).live = false;
    });
  }

  /** docs/design.md §2 rule 10: the host's connections stop counting until its agent's next snapshot. */
  retire(host: string, nowMs: number): void {
    this.change(nowMs, () => {
      const record = this.host(host);
      record.retired = true;
      record.synced = false;
      record.connections.clear();
    });
  }

  /** One `upsert` item. Ignored while the host is retired. */
  upsert(host: string, session: Session, nowMs: number): void {
    if (this.host(host).retired) return;
    this.change(nowMs, () => this.host(host).connections.set(session.id, session));
  }

  /** One `end` item; ending an unknown id is a no-op. */
  end(host: string, id: string, nowMs: number): void {
    if (this.host(host).retired) return;
    this.change(nowMs, () => this.host(host).connections.delete(id));
  }

  /** docs/design.md §2 rule 6: a snapshot applies as the ends of what it no longer lists, then its upserts in order. */
  snapshot(host: string, sessions: readonly Session[], nowMs: number): void {
    const record = this.host(host);
    const countsCorrections = record.synced && !record.retired;
    record.retired = false;
    const listed = new Set(sessions.map((session) => session.id));
    for (const id of [...record.connections.keys()]) {
      if (listed.has(id)) continue;
      if (countsCorrections) this.snapshotCorrections += 1;
      this.change(nowMs, () => record.connections.delete(id));
    }
    for (const session of sessions) {
      const held = record.connections.get(session.id);
      if (countsCorrections && (!held || canonicalSession(held) !== canonicalSession(session))) {
        this.snapshotCorrections += 1;
      }
      this.change(nowMs, () => record.connections.set(session.id, session));
    }
    record.synced = true;
    this.tick(nowMs);
  }

  /** docs/design.md §2 rule 8: more seats than the grace recorded reset it; then an overuse starts a new one. */
  setSeats(seats: number, nowMs: number): void {
    this.seats = seats;
    this.tick(nowMs);
  }

  /** The time-driven part of rules 7 and 8, run after every change. */
  tick(nowMs: number): void {
    const users = this.usage().users;
    const day = utcDay(nowMs);
    if (this.day !== day) {
      this.day = day;
      this.peakUsersToday = users;
    }
    this.peakUsers = Math.max(this.peakUsers, users);
    this.peakUsersToday = Math.max(this.peakUsersToday, users);
    this.dailyPeaks.set(day, Math.max(this.dailyPeaks.get(day) ?? 0, users));
    if (this.graceSeats !== undefined && this.seats > this.graceSeats) {
      this.graceStartedAt = undefined;
      this.graceSeats = undefined;
    }
    if (this.graceStartedAt === undefined && this.seed !== undefined && this.seedUsed !== this.seed) {
      this.seedUsed = this.seed;
      this.graceStartedAt = this.seed;
      this.graceSeats = this.seats;
    }
    if (this.graceStartedAt === undefined && users > this.seats) {
      this.graceStartedAt = nowMs;
      this.graceSeats = this.seats;
    }
  }

  private host(host: string): HostRecord {
    const key = normalizeHost(host);
    let record = this.hosts.get(key);
    if (!record) {
      record = { live: false, retired: false, synced: false, connections: new Map() };
      this.hosts.set(key, record);
    }
    return record;
  }

  /** Applies one item and does its bookkeeping: who started or stopped consuming, docs/design.md §2 rule 6. */
  private change(nowMs: number, mutate: () => void): void {
    // Time first: a new UTC day starts from the users in use before this item.
    this.tick(nowMs);
    const before = this.usage().consumingUsers;
    mutate();
    const after = this.usage();
    for (const user of before) if (!after.consumingUsers.has(user)) this.consumingOrder.delete(user);
    for (const user of after.consumingUsers) {
      if (before.has(user)) continue;
      this.consumingOrder.set(user, this.nextOrder++);
      if (after.users > this.seats) this.overuseAdmissions += 1;
    }
    this.tick(nowMs);
  }
}
