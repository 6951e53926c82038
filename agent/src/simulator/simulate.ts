/**
 * The `simulate` source: synthetic sessions of one RD Session Host with realistic churn, for demos,
 * end-to-end tests and the benchmark. The simulator *is* the ground truth: `sessions()` is exactly
 * what the host holds at the simulated time, so whatever reaches the collector can be checked
 * against it.
 *
 * The churn is a continuous-time Markov process simulated event by event (Gillespie's method), so
 * it is exact at any time resolution: advancing in many small steps or in one jump gives the same
 * sessions. Each session, whatever its state, logs off at a constant hazard; an active one
 * disconnects at another, a disconnected one reconnects at a third; logons arrive as a Poisson
 * stream that slows down above the target size. Logoffs therefore speed up in proportion to the
 * host's size and logons slow down past it, so the host hovers around `targetSessions`.
 *
 * It keeps Windows' rules (docs/design.md §2 rule 1): an id names one logon and is never reused; `since`
 * (the logon time) and `admin` are fixed at logon; a disconnected session comes back under the same
 * id and since. A user holds at most one simulated session of each kind on a host (Windows' single
 * session per user, and RAS sharing one session between a user's published apps), and a user whose
 * session is disconnected reconnects it rather than logging on anew.
 */
import { NAME_PATTERN, type ClientInfo, type Session, type SessionKind, type SessionState } from '@rasmon/protocol';
import { Random } from './random.js';
import type { SessionSource } from '../session/source.js';

/** Options of one simulated host. Rates are per simulated minute. */
export interface SimulationOptions {
  /** Seeds the PRNG: the same seed and the same calls give the same sessions. */
  seed: number;
  /** The host's name (docs/design.md §3 name pattern); it prefixes every session id, so ids differ across hosts. */
  host: string;
  /** The accounts this host draws its logons from, e.g. `CORP\user001`; kept as given (case too). */
  users: string[];
  /** The accounts that are administrators: their sessions carry `admin: true`. List them in `users` too. */
  admins?: string[];
  /** Put before names in `users` and `admins` that have neither `DOMAIN\` nor `@`, as agents do. */
  domain?: string;
  /** Size the churn steers toward. Default: half of `users`. Keep it well below twice `users`. */
  targetSessions?: number;
  /**
   * Logons per minute while the host is at or below `targetSessions`; above it they slow down in
   * proportion. Default: `targetSessions / 30` (sessions last 30 minutes on average).
   */
  logonsPerMinute?: number;
  /**
   * Logoffs per minute when the host is at `targetSessions`; each session logs off at the hazard
   * `logoffsPerMinute / targetSessions`, so logoffs speed up as the host grows. Default:
   * `logonsPerMinute`, which balances at the target.
   */
  logoffsPerMinute?: number;
  /** Disconnects per minute at `targetSessions`, in the steady state. Default: half of `logoffsPerMinute`. */
  disconnectsPerMinute?: number;
  /**
   * Reconnects per minute at `targetSessions`, in the steady state. Below `disconnectsPerMinute`:
   * the difference is the disconnected sessions that log off instead. Default: 0.3 × `logoffsPerMinute`.
   */
  reconnectsPerMinute?: number;
  /** Share of logons that are published applications (kind `app`). Default 0.3. */
  appShare?: number;
  /** Share of non-admin logons made with plain RDP rather than through RAS. Default 0.1. */
  rdpShare?: number;
  /** Share of admin logons made with plain RDP: administrators mostly use mstsc. Default 0.5. */
  adminRdpShare?: number;
  /**
   * Sessions the host already holds at `startMs`, logged on earlier (as an agent starting on a busy
   * host finds them), some already disconnected. Default: `targetSessions`; 0 starts empty.
   */
  initialSessions?: number;
  /** The simulated clock at the start, ms since the epoch. */
  startMs: number;
}

/** How many of each change happened so far, simulated and forced alike. */
export interface SimulationStats {
  logons: number;
  logoffs: number;
  disconnects: number;
  reconnects: number;
}

/** Fields a forced logon may set; the simulator allocates the id, and the user is the first argument. */
export type LogonFields = Partial<Omit<Session, 'id' | 'user'>>;

const MINUTE_MS = 60_000;
const DEFAULT_SESSION_MINUTES = 30;
/** Windows gives session 0 to services and 1 to the console, so remote sessions start at 2. */
const FIRST_WTS_ID = 2;
/** Share of logons and reconnects from a device other than the user's usual one (a laptop, home PC). */
const OTHER_DEVICE_SHARE = 0.2;
/** Share of logons whose client reports neither name nor address (some web and mobile clients). */
const NO_CLIENT_SHARE = 0.05;
const DEVICE_PREFIXES = ['DESKTOP-', 'LAPTOP-', 'WS-', 'TC-'] as const;
const DEVICE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789';
/** Tries at drawing a user free for a logon before listing the free ones (rare: a nearly full host). */
const DRAW_TRIES = 8;

/** Ids in insertion order with O(1) add, delete and uniform draw. */
class IdPool {
  private readonly ids: string[] = [];
  private readonly index = new Map<string, number>();

  get size(): number {
    return this.ids.length;
  }

  add(id: string): void {
    this.index.set(id, this.ids.length);
    this.ids.push(id);
  }

  delete(id: string): void {
    const at = this.index.get(id);
    if (at === undefined) return;
    const last = this.ids.pop() as string;
    if (last !== id) {
      this.ids[at] = last;
      this.index.set(last, at);
    }
    this.index.delete(id);
  }

  at(position: number): string {
    return this.ids[position] as string;
  }
}

/** Per-millisecond hazards derived from the per-minute rates at the target size. */
interface Hazards {
  logon: number;
  logoff: number;
  disconnect: number;
  reconnect: number;
  /** Expected share of disconnected sessions in the steady state. */
  disconnectedShare: number;
}

/**
 * One simulated RD Session Host. Deterministic: it draws only from its seeded PRNG and moves only on
 * its simulated clock, which starts at `startMs` and advances with `advanceTo`. As the agent's
 * `simulate` source, `list(now)` follows the agent's clock.
 */
export class SessionSimulator implements SessionSource {
  readonly name = 'simulate';
  /** The host's name, as given. */
  readonly host: string;
  private readonly rng: Random;
  private readonly users: readonly string[];
  private readonly admins: ReadonlySet<string>;
  private readonly domain: string | undefined;
  private readonly target: number;
  private readonly hazards: Hazards;
  private readonly appShare: number;
  private readonly rdpShare: number;
  private readonly adminRdpShare: number;

  private clock: number;
  private nextEventAt = Infinity;
  private nextWtsId = FIRST_WTS_ID;
  private readonly live = new Map<string, Session>();
  private readonly active = new IdPool();
  private readonly disconnected = new IdPool();
  /** Live sessions per `kind` + user, to keep simulated logons to one session of a kind per user. */
  private readonly held = new Map<string, number>();
  private readonly devices = new Map<string, ClientInfo>();
  private readonly counts: SimulationStats = { logons: 0, logoffs: 0, disconnects: 0, reconnects: 0 };

  /** @throws RangeError naming the option when an option is out of range or the rates cannot balance. */
  constructor(options: SimulationOptions) {
    if (!NAME_PATTERN.test(options.host)) throw new RangeError(`host: must match ${NAME_PATTERN.source}`);
    if (!isMillis(options.startMs)) throw new RangeError('startMs: must be a non-negative safe integer');
    this.host = options.host;
    this.rng = new Random(options.seed);
    this.domain = options.domain;
    this.users = options.users.map((user) => this.qualify(user, 'users'));
    this.admins = new Set((options.admins ?? []).map((user) => this.qualify(user, 'admins')));
    this.target = options.targetSessions ?? Math.max(1, Math.round(this.users.length / 2));
    if (!(Number.isFinite(this.target) && this.target > 0)) throw new RangeError('targetSessions: must be positive');
    this.appShare = share(options.appShare, 0.3, 'appShare');
    this.rdpShare = share(options.rdpShare, 0.1, 'rdpShare');
    this.adminRdpShare = share(options.adminRdpShare, 0.5, 'adminRdpShare');
    this.hazards = deriveHazards(options, this.target);

    const initial = options.initialSessions ?? Math.round(this.target);
    if (!(Number.isSafeInteger(initial) && initial >= 0)) {
      throw new RangeError('initialSessions: must be a non-negative integer');
    }
    this.clock = options.startMs;
    this.warmStart(initial);
    this.schedule();
  }

  /** The simulated clock, ms since the epoch. */
  get now(): number {
    return this.clock;
  }

  /**
   * Advances the simulated clock to `nowMs` (floored to a whole ms), applying every churn event due
   * by then in time order. A time at or before the clock changes nothing: the clock never goes back.
   */
  advanceTo(nowMs: number): void {
    if (!Number.isFinite(nowMs)) throw new RangeError(`advanceTo: time must be finite, got ${nowMs}`);
    const until = Math.floor(nowMs);
    while (this.nextEventAt <= until) {
      this.clock = this.nextEventAt;
      this.step();
      this.schedule();
    }
    if (until > this.clock) this.clock = until;
  }

  /** The source contract: advances to `nowMs`, then lists the sessions. */
  async list(nowMs: number): Promise<Session[]> {
    this.advanceTo(nowMs);
    return this.sessions();
  }

  /** The ground truth: the host's sessions now, sorted by id. Copies: changing them changes nothing here. */
  sessions(): Session[] {
    return [...this.live.values()].map(copySession).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** A copy of one live session, or undefined once it has logged off (or never existed). */
  session(id: string): Session | undefined {
    const session = this.live.get(id);
    return session && copySession(session);
  }

  /** Counts of the changes so far, simulated and forced. */
  stats(): SimulationStats {
    return { ...this.counts };
  }

  /**
   * Logs `user` on now, whatever the churn would do (a second session of a kind included). Unset
   * fields default to an active RAS desktop from the user's usual device, `admin` to membership of
   * `admins`; `since` may be set to an earlier time, never a later one. Returns a copy of the session.
   */
  logon(user: string, fields: LogonFields = {}): Session {
    const name = this.qualify(user, 'user');
    const since = fields.since ?? this.clock;
    if (!isMillis(since) || since > this.clock) {
      throw new RangeError(`since: must be a whole ms between 0 and the simulated clock (${this.clock})`);
    }
    const client = 'client' in fields ? fields.client : this.usualDevice(name);
    const session = this.add({
      id: this.allocateId(since),
      user: name,
      admin: fields.admin ?? this.admins.has(name),
      kind: fields.kind ?? 'desktop',
      via: fields.via ?? 'ras',
      state: fields.state ?? 'active',
      since,
      ...(client && { client: { ...client } }),
    });
    this.schedule();
    return copySession(session);
  }

  /** Logs a session off now. False when no such session is live. */
  logoff(id: string): boolean {
    if (!this.live.has(id)) return false;
    this.end(id);
    this.schedule();
    return true;
  }

  /** Disconnects an active session now. False when it is not live or already disconnected. */
  disconnect(id: string): boolean {
    if (this.live.get(id)?.state !== 'active') return false;
    this.setState(id, 'disconnected');
    this.schedule();
    return true;
  }

  /**
   * Reconnects a disconnected session now: same id and since, state active, and `client` when given
   * (the user came back from another device). False when it is not live or not disconnected.
   */
  reconnect(id: string, client?: ClientInfo): boolean {
    if (this.live.get(id)?.state !== 'disconnected') return false;
    this.setState(id, 'active', client);
    this.schedule();
    return true;
  }

  /** Fills the host with sessions logged on before `startMs`, oldest first so WTS ids rise with since. */
  private warmStart(count: number): void {
    const meanAgeMs = this.hazards.logoff > 0 ? 1 / this.hazards.logoff : DEFAULT_SESSION_MINUTES * MINUTE_MS;
    const ages = Array.from({ length: count }, () => Math.round(this.rng.exponential(meanAgeMs)));
    ages.sort((a, b) => b - a);
    for (const age of ages) {
      const state = this.rng.chance(this.hazards.disconnectedShare) ? 'disconnected' : 'active';
      this.simulatedLogon(Math.max(0, this.clock - age), state);
    }
  }

  /** Logons slow down above the target so a burst cannot grow the host without bound. */
  private logonRate(): number {
    const size = this.live.size;
    return size > this.target ? (this.hazards.logon * this.target) / size : this.hazards.logon;
  }

  private totalRate(): number {
    const { logoff, disconnect, reconnect } = this.hazards;
    return (
      this.logonRate() + logoff * this.live.size + disconnect * this.active.size + reconnect * this.disconnected.size
    );
  }

  /** Draws the time of the next churn event; called again after every change, since rates follow the size. */
  private schedule(): void {
    const rate = this.totalRate();
    this.nextEventAt = rate > 0 ? this.clock + Math.max(1, Math.ceil(this.rng.exponential(1 / rate))) : Infinity;
  }

  /** Applies one churn event, chosen in proportion to the rates. */
  private step(): void {
    const { logoff, disconnect } = this.hazards;
    const logons = this.logonRate();
    const logoffs = logoff * this.live.size;
    const disconnects = disconnect * this.active.size;
    const draw = this.rng.next() * this.totalRate();
    if (draw < logons) {
      this.simulatedLogon(this.clock, 'active');
    } else if (draw < logons + logoffs) {
      const position = this.rng.int(0, this.live.size - 1);
      this.end(
        position < this.active.size ? this.active.at(position) : this.disconnected.at(position - this.active.size),
      );
    } else if (draw < logons + logoffs + disconnects) {
      this.setState(this.draw(this.active), 'disconnected');
    } else if (this.disconnected.size > 0) {
      const client = this.rng.chance(OTHER_DEVICE_SHARE) ? this.newDevice() : undefined;
      this.setState(this.draw(this.disconnected), 'active', client);
    }
  }

  private draw(pool: IdPool): string {
    return pool.at(this.rng.int(0, pool.size - 1));
  }

  /** A logon by a user of the population who holds no session of the drawn kind; none if all do. */
  private simulatedLogon(since: number, state: SessionState): void {
    const kind: SessionKind = this.rng.chance(this.appShare) ? 'app' : 'desktop';
    const user = this.freeUser(kind);
    if (user === undefined) return;
    const admin = this.admins.has(user);
    const via = this.rng.chance(admin ? this.adminRdpShare : this.rdpShare) ? 'rdp' : 'ras';
    const client = this.rng.chance(NO_CLIENT_SHARE)
      ? undefined
      : this.rng.chance(OTHER_DEVICE_SHARE)
        ? this.newDevice()
        : this.usualDevice(user);
    this.add({
      id: this.allocateId(since),
      user,
      admin,
      kind,
      via,
      state,
      since,
      ...(client && { client }),
    });
  }

  /** A uniform draw among the users free for `kind`: a few blind tries, then the list of the free. */
  private freeUser(kind: SessionKind): string | undefined {
    if (this.users.length === 0) return undefined;
    for (let i = 0; i < DRAW_TRIES; i++) {
      const user = this.rng.pick(this.users);
      if (!this.held.has(heldKey(kind, user))) return user;
    }
    const free = this.users.filter((user) => !this.held.has(heldKey(kind, user)));
    return free.length > 0 ? this.rng.pick(free) : undefined;
  }

  /** Ids are `host:wtsId-since`; the WTS id only ever rises, so no id is ever given twice. */
  private allocateId(since: number): string {
    return `${this.host}:${this.nextWtsId++}-${since}`;
  }

  private add(session: Session): Session {
    this.live.set(session.id, session);
    (session.state === 'active' ? this.active : this.disconnected).add(session.id);
    const key = heldKey(session.kind, session.user);
    this.held.set(key, (this.held.get(key) ?? 0) + 1);
    this.counts.logons++;
    return session;
  }

  private end(id: string): void {
    const session = this.live.get(id);
    if (!session) return;
    this.live.delete(id);
    (session.state === 'active' ? this.active : this.disconnected).delete(id);
    const key = heldKey(session.kind, session.user);
    const held = (this.held.get(key) ?? 1) - 1;
    if (held > 0) this.held.set(key, held);
    else this.held.delete(key);
    this.counts.logoffs++;
  }

  /** Moves a live session between states; only state and (on reconnect) client ever change. */
  private setState(id: string, state: SessionState, client?: ClientInfo): void {
    const session = this.live.get(id);
    if (!session || session.state === state) return;
    (session.state === 'active' ? this.active : this.disconnected).delete(id);
    (state === 'active' ? this.active : this.disconnected).add(id);
    session.state = state;
    if (client) session.client = { ...client };
    if (state === 'active') this.counts.reconnects++;
    else this.counts.disconnects++;
  }

  /** The device a user normally works from, made up on first use. */
  private usualDevice(user: string): ClientInfo {
    let device = this.devices.get(user);
    if (!device) {
      device = this.newDevice();
      this.devices.set(user, device);
    }
    return { ...device };
  }

  private newDevice(): ClientInfo {
    let name = this.rng.pick(DEVICE_PREFIXES);
    for (let i = 0; i < 7; i++) name += DEVICE_ALPHABET[this.rng.int(0, DEVICE_ALPHABET.length - 1)];
    const address = this.rng.chance(0.7)
      ? `10.${this.rng.int(0, 255)}.${this.rng.int(0, 255)}.${this.rng.int(1, 254)}`
      : `192.168.${this.rng.int(0, 255)}.${this.rng.int(1, 254)}`;
    return { name, address };
  }

  /** Puts the domain before a bare name and checks the name is one the protocol accepts. */
  private qualify(user: string, option: string): string {
    const name = this.domain !== undefined && !/[\\@]/.test(user) ? `${this.domain}\\${user}` : user;
    if (name.trim() === '' || name.length > 256 || !name.isWellFormed()) {
      throw new RangeError(`${option}: ${JSON.stringify(user)} is not a valid user name (1-256 characters, not blank)`);
    }
    return name;
  }
}

/**
 * Per-ms hazards such that a host at `targetSessions` sees the configured rates on average. In the
 * steady state disconnect and reconnect/logoff flows balance, which fixes the share of disconnected
 * sessions: (disconnects − reconnects) / logoffs.
 */
function deriveHazards(options: SimulationOptions, target: number): Hazards {
  const logons = rate(options.logonsPerMinute, target / DEFAULT_SESSION_MINUTES, 'logonsPerMinute');
  const logoffs = rate(options.logoffsPerMinute, logons, 'logoffsPerMinute');
  const disconnects = rate(options.disconnectsPerMinute, 0.5 * logoffs, 'disconnectsPerMinute');
  const reconnects = rate(options.reconnectsPerMinute, 0.3 * logoffs, 'reconnectsPerMinute');
  if (logoffs === 0 && (logons > 0 || disconnects > 0)) {
    throw new RangeError('logoffsPerMinute: must be positive when sessions log on or disconnect');
  }
  if (reconnects > 0 && reconnects >= disconnects) {
    throw new RangeError('reconnectsPerMinute: must be below disconnectsPerMinute');
  }
  if (disconnects > 0 && disconnects - reconnects >= logoffs) {
    throw new RangeError('disconnectsPerMinute: minus reconnectsPerMinute must be below logoffsPerMinute');
  }
  const disconnectedShare = disconnects > 0 ? (disconnects - reconnects) / logoffs : 0;
  return {
    logon: logons / MINUTE_MS,
    logoff: logoffs / target / MINUTE_MS,
    disconnect: disconnects > 0 ? disconnects / (target * (1 - disconnectedShare)) / MINUTE_MS : 0,
    reconnect: reconnects > 0 ? reconnects / (target * disconnectedShare) / MINUTE_MS : 0,
    disconnectedShare,
  };
}

function rate(value: number | undefined, fallback: number, option: string): number {
  const result = value ?? fallback;
  if (!(Number.isFinite(result) && result >= 0)) throw new RangeError(`${option}: must be a non-negative number`);
  return result;
}

/** A share in [0, 1], or the fallback; throws naming the option. */
export function share(value: number | undefined, fallback: number, option: string): number {
  const result = value ?? fallback;
  if (!(result >= 0 && result <= 1)) throw new RangeError(`${option}: must be between 0 and 1`);
  return result;
}

function isMillis(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

function heldKey(kind: SessionKind, user: string): string {
  return `${kind}\u0000${user}`;
}

function copySession(session: Session): Session {
  return session.client ? { ...session, client: { ...session.client } } : { ...session };
}
