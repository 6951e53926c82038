/**
 * `wts` (the default on Windows): the host's sessions from the WTS API, called in this process.
 *
 * One poll: one session enumeration, one process enumeration (the image names tell published apps),
 * and per user session the client name, address and protocol and WTSINFOW's logon time and state. A
 * session whose queries fail with ERROR_FILE_NOT_FOUND logged off meanwhile and is left out. Admin is
 * decided once per logon from the session's token (token-admin.ts); a token that does not answer is
 * logged once per logon, counted in adminUnknown(), and asked again at every poll. Session events
 * (WTSWaitSystemEvent, waited for on koffi's worker thread) wake the agent at once; the poll is the
 * slow safety net behind them.
 *
 * `--input FILE` reads a saved list of RawSession objects instead (wts-output.ts), for support cases.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Session } from '@rasmon/protocol';
import type { Logger } from 'pino';
import type { Classifier } from './classify.js';
import type { RawSession } from './raw-session.js';
import type { SessionSource } from '../session/source.js';
import { parseWtsOutput } from './wts-output.js';
import { LogonAdminCache, resolveAdminSids, tokenIsAdmin } from './token-admin.js';
import { WTS_EVENT_FLUSH, WtsApi, WtsInfoClass, type WtsCalls } from './wtsapi.js';
import { sessionVanished, tokenErrorText } from './win32-error.js';
import { WindowsOnlyError } from './windows-only.js';
import {
  decodeClientAddress,
  decodeProtocolType,
  decodeWideString,
  decodeWtsInfo,
  imagesBySession,
  type SessionEntry,
} from './wts-decode.js';

/** States with no user session behind them: no query is spent on them. */
const NO_USER_STATES = new Set(['listen', 'down', 'init', 'reset']);
/** How long an `adminGroups` name that did not resolve waits before it is looked up again. */
const UNRESOLVED_RETRY_MS = 10 * 60_000;
/** After a failed wait for session events, the next one waits this long (doubling) first. */
const WAIT_RETRY_MS = { initial: 1_000, max: 60_000 };

export interface WtsSourceOptions {
  classifier: Classifier;
  /** Extra groups (names or SIDs) whose members are administrators. */
  adminGroups: readonly string[];
  log: Logger;
  /** Read this saved output instead of asking Windows. */
  inputFile?: string;
  /** The Windows calls; the real ones by default. */
  calls?: WtsCalls;
}

export class WtsSource implements SessionSource {
  readonly name = 'wts';
  private calls: WtsCalls | undefined;
  private readonly admins = new LogonAdminCache();
  private adminSids: Set<string> | undefined;
  private unresolved: string[] = [];
  private unresolvedAt = 0;
  private unknownAdmins = 0;

  constructor(private readonly options: WtsSourceOptions) {
    this.calls = options.calls;
  }

  private get api(): WtsCalls {
    if (!this.calls && process.platform !== 'win32') throw new WindowsOnlyError('wts');
    this.calls ??= new WtsApi();
    return this.calls;
  }

  resume(previous: readonly Session[]): void {
    this.options.classifier.resume(previous);
  }

  async list(nowMs: number): Promise<Session[]> {
    if (this.options.inputFile) {
      return this.options.classifier.classify(parseWtsOutput(await readFile(this.options.inputFile, 'utf8')), nowMs);
    }
    return this.options.classifier.classify(this.read(nowMs), nowMs);
  }

  /**
   * Sessions of the last read whose administrator status could not be read (their token did not
   * answer): they count as consuming until it does (`rasmon_agent_sessions_admin_unknown`).
   */
  adminUnknown(): number {
    return this.unknownAdmins;
  }

  /** The sessions as Windows tells them now. */
  read(nowMs = Date.now()): RawSession[] {
    const api = this.api;
    this.resolveAdminGroups(nowMs);
    const all = api.sessions();
    const entries = all.filter((entry) => entry.sessionId !== 0 && entry.userName && !NO_USER_STATES.has(entry.state));
    const images = api.processes();
    const bySession = images ? imagesBySession(images) : undefined;
    const logons = new Set<string>();
    const sessions: RawSession[] = [];
    let vanished = 0;
    this.unknownAdmins = 0;
    for (const entry of entries) {
      const session = this.readSession(entry, bySession, logons);
      if (session) sessions.push(session);
      else vanished += 1;
    }
    this.admins.retain(logons);
    this.options.log.debug(
      { sessions: all.length, userSessions: sessions.length, vanished, processes: images?.length },
      'wts read',
    );
    return sessions;
  }

  /** One user session's facts; undefined when it ended between the enumeration and its queries. */
  private readSession(
    entry: SessionEntry,
    bySession: Map<number, string[]> | undefined,
    logons: Set<string>,
  ): RawSession | undefined {
    const api = this.api;
    const { sessionId } = entry;
    const answers = [
      WtsInfoClass.sessionInfo,
      WtsInfoClass.clientName,
      WtsInfoClass.clientAddress,
      WtsInfoClass.clientProtocolType,
    ].map((infoClass) => api.query(sessionId, infoClass));
    // ERROR_FILE_NOT_FOUND: logged off meanwhile. Reporting it would invent a session dated now.
    if (answers.some(sessionVanished)) return undefined;
    const [info, clientName, clientAddress, protocol] = answers.map((a) => (a.ok ? a.value : undefined));
    const wtsInfo = info ? decodeWtsInfo(info) : undefined;
    const session: RawSession = { sessionId, user: entry.userName!, state: wtsInfo?.state ?? entry.state };
    if (entry.domainName) session.domain = entry.domainName;
    if (entry.sessionName) session.sessionName = entry.sessionName;
    if (wtsInfo?.logonTime !== undefined) session.logonTime = wtsInfo.logonTime;
    const name = clientName && decodeWideString(clientName);
    const address = clientAddress && clientAddress.length >= 24 ? decodeClientAddress(clientAddress) : undefined;
    const protocolType = protocol && decodeProtocolType(protocol);
    if (name) session.clientName = name;
    if (address) session.clientAddress = address;
    if (protocolType !== undefined) session.protocolType = protocolType;
    if (bySession) session.processes = bySession.get(sessionId) ?? [];

    // A logon: this session id at this logon time (or, without one, with this user).
    const logon = `${sessionId}|${session.logonTime ?? `user:${session.domain ?? ''}\\${session.user}`}`;
    let gone = false;
    const status = this.admins.decide(logon, () => {
      const token = api.sessionTokenGroups(sessionId);
      if (token.ok) return tokenIsAdmin(token.value, this.adminSids!);
      gone = sessionVanished(token);
      return { win32Error: token.win32Error };
    });
    if (gone) return undefined;
    logons.add(logon);
    if (status.firstFailure !== undefined) {
      this.options.log.warn(
        { sessionId, win32Error: status.firstFailure },
        `admin status of session ${sessionId} cannot be read: ${tokenErrorText(status.firstFailure)}; it counts as a non-admin (consuming) and is asked again at every poll`,
      );
    }
    if (status.answeredAfter !== undefined) {
      this.options.log.info(
        { sessionId, admin: status.admin, failedReads: status.answeredAfter },
        `admin status of session ${sessionId} read after ${status.answeredAfter} failed read${status.answeredAfter === 1 ? '' : 's'}`,
      );
    }
    if (status.admin === undefined) this.unknownAdmins += 1;
    else session.admin = status.admin;
    return session;
  }

  /** `adminGroups` to SIDs: all at the first poll; a name that failed, again after a while. */
  private resolveAdminGroups(nowMs: number): void {
    if (this.adminSids && (this.unresolved.length === 0 || nowMs - this.unresolvedAt < UNRESOLVED_RETRY_MS)) return;
    const names = this.adminSids ? this.unresolved : this.options.adminGroups;
    const { sids, unresolved } = resolveAdminSids(names, (name) => this.api.lookupAccountSid(name));
    const hadUnresolved = this.unresolved.length;
    this.adminSids = new Set([...(this.adminSids ?? []), ...sids]);
    this.unresolved = unresolved;
    this.unresolvedAt = nowMs;
    if (unresolved.length > 0) {
      this.options.log.warn(
        { adminGroups: unresolved },
        'adminGroups not found; their members do not count as admins until they are',
      );
    }
    // New SIDs change decisions already taken: decide every logon again.
    if (hadUnresolved > unresolved.length && hadUnresolved > 0) this.admins.clear();
  }

  /**
   * Calls `onChange` on every session event (logon, logoff, connect, disconnect…) until the
   * returned function is called. A wait that fails (wine has none) is retried with a growing pause.
   */
  watch(onChange: () => void): () => void {
    if (this.options.inputFile) return () => {};
    const api = this.api;
    let stopped = false;
    let failures = 0;
    const loop = async () => {
      while (!stopped) {
        const flags = await api.waitSystemEvent();
        if (stopped) return;
        if (flags === undefined) {
          if (failures === 0) this.options.log.warn('cannot wait for session events: polling only until it can');
          failures += 1;
          await sleep(Math.min(WAIT_RETRY_MS.max, WAIT_RETRY_MS.initial * 2 ** Math.min(failures - 1, 10)), undefined, {
            ref: false,
          });
          continue;
        }
        if (failures > 0) this.options.log.info('waiting for session events again');
        failures = 0;
        if ((flags & ~WTS_EVENT_FLUSH) !== 0) onChange();
      }
    };
    void loop().catch((err: unknown) => this.options.log.error({ err }, 'session event wait stopped'));
    return () => {
      stopped = true;
      api.releaseWaits();
    };
  }
}
