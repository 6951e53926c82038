/**
 * `wts` (the default on Windows): the host's sessions from the WTS API, called in this process.
 *
 * One poll: one session enumeration, one process enumeration (the image names tell published apps),
 * and per user session the client name, address and protocol and WTSINFOW's logon time. Admin is
 * decided once per logon from the session's token (token-admin.ts). Session events
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
import {
  decodeClientAddress,
  decodeProtocolType,
  decodeWideString,
  decodeWtsInfo,
  imagesBySession,
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

  constructor(private readonly options: WtsSourceOptions) {
    this.calls = options.calls;
  }

  private get api(): WtsCalls {
    this.calls ??= new WtsApi();
    return this.calls;
  }

  async list(nowMs: number): Promise<Session[]> {
    if (this.options.inputFile) {
      return this.options.classifier.classify(parseWtsOutput(await readFile(this.options.inputFile, 'utf8')), nowMs);
    }
    return this.options.classifier.classify(this.read(nowMs), nowMs);
  }

  /** The sessions as Windows tells them now. */
  read(nowMs = Date.now()): RawSession[] {
    const api = this.api;
    this.resolveAdminGroups(nowMs);
    const all = api.sessions();
    const entries = all.filter((entry) => entry.sessionId !== 0 && entry.userName && !NO_USER_STATES.has(entry.state));
    const images = api.processes();
    this.options.log.debug(
      { sessions: all.length, userSessions: entries.length, processes: images?.length },
      'wts read',
    );
    const bySession = images ? imagesBySession(images) : undefined;
    const logons = new Set<string>();
    const sessions: RawSession[] = [];
    for (const entry of entries) {
      const session: RawSession = { sessionId: entry.sessionId, user: entry.userName!, state: entry.state };
      if (entry.domainName) session.domain = entry.domainName;
      if (entry.sessionName) session.sessionName = entry.sessionName;
      const info = api.query(entry.sessionId, WtsInfoClass.sessionInfo);
      const logonTime = info ? decodeWtsInfo(info).logonTime : undefined;
      if (logonTime !== undefined) session.logonTime = logonTime;
      const clientName = api.query(entry.sessionId, WtsInfoClass.clientName);
      const clientAddress = api.query(entry.sessionId, WtsInfoClass.clientAddress);
      const protocol = api.query(entry.sessionId, WtsInfoClass.clientProtocolType);
      const name = clientName && decodeWideString(clientName);
      const address = clientAddress && clientAddress.length >= 24 ? decodeClientAddress(clientAddress) : undefined;
      const protocolType = protocol && decodeProtocolType(protocol);
      if (name) session.clientName = name;
      if (address) session.clientAddress = address;
      if (protocolType !== undefined) session.protocolType = protocolType;
      if (bySession) session.processes = bySession.get(entry.sessionId) ?? [];
      // A logon: this session id at this logon time (or, without one, with this user).
      const logon = `${entry.sessionId}|${logonTime ?? `user:${session.domain ?? ''}\\${session.user}`}`;
      logons.add(logon);
      const admin = this.admins.decide(logon, () => {
        const token = api.sessionTokenGroups(entry.sessionId);
        return token ? tokenIsAdmin(token, this.adminSids!) : undefined;
      });
      if (admin !== undefined) session.admin = admin;
      sessions.push(session);
    }
    this.admins.retain(logons);
    return sessions;
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
    if (hadUnresolved > unresolved.length && hadUnresolved > 0) this.admins.retain(new Set());
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
