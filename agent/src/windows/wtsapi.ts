/**
 * The WTS API and the token calls, through koffi, in this process: no child process per poll.
 * Each call copies what Windows returned into a Buffer and frees Windows' memory at once; the
 * decoding is wts-decode.ts's.
 *
 * The `Ex` enumerations (Windows Server 2008 R2 and later) come first; when one fails as not
 * implemented, as wine's does, the older call of the same family is used (it lists the same
 * sessions and processes; the user and domain are then asked per session).
 */
import { promisify } from 'node:util';
import { RasmonError } from '@rasmon/protocol/kit';
import { loadKoffi, type KoffiModule } from './koffi-loader.js';
import type { SessionTokenGroups } from './token-admin.js';
import { answered, ERROR_NO_TOKEN, failed, type Win32Answer } from './win32-error.js';
import {
  decodeProcessInfo,
  decodeProcessInfoEx,
  decodeSessionInfo,
  decodeSessionInfo1,
  decodeTokenGroups,
  decodeWideString,
  PROCESS_INFO_EXW_SIZE,
  PROCESS_INFOW_SIZE,
  SESSION_INFO_1W_SIZE,
  SESSION_INFOW_SIZE,
  sidLength,
  sidToString,
  type ProcessEntry,
  type SessionEntry,
  type StringAt,
  type TokenGroup,
} from './wts-decode.js';

/** WTS_INFO_CLASS values used here. */
export const WtsInfoClass = {
  userName: 5,
  domainName: 7,
  clientName: 10,
  clientAddress: 14,
  clientProtocolType: 16,
  sessionInfo: 24,
} as const;

/** WTS_EVENT_* flags of WTSWaitSystemEvent. */
export const WTS_EVENT_ALL = 0x7fffffff;
export const WTS_EVENT_FLUSH = 0x80000000;
const WTS_ANY_SESSION = 0xfffffffe;
const WTS_TYPE_PROCESS_INFO_LEVEL_1 = 1;
const WTS_TYPE_SESSION_INFO_LEVEL_1 = 2;
const TOKEN_GROUPS = 2;
const TOKEN_ELEVATION_TYPE = 18;
const TOKEN_LINKED_TOKEN = 19;
const TOKEN_ELEVATION_TYPE_LIMITED = 3;
const ERROR_INSUFFICIENT_BUFFER = 122;

/** What the `wts` source needs from Windows; wts-source.ts is written against this. */
export interface WtsCalls {
  /** Every session of this host, user and domain filled where the session has one. */
  sessions(): SessionEntry[];
  /** Every process of every session; undefined when Windows refused the list. */
  processes(): ProcessEntry[] | undefined;
  /** WTSQuerySessionInformationW's answer for one class, copied, or the error it failed with. */
  query(sessionId: number, infoClass: number): Win32Answer<Buffer>;
  /**
   * The groups of the session's user token, or the error of WTSQueryUserToken (1008 no token,
   * 1314 not LocalSystem, 2 the session ended) or of GetTokenInformation.
   */
  sessionTokenGroups(sessionId: number): Win32Answer<SessionTokenGroups>;
  /** An account name's SID, once, through the local security authority. */
  lookupAccountSid(name: string): string | undefined;
  /** Waits (on koffi's worker thread) for session events; the flags, or undefined if it failed. */
  waitSystemEvent(): Promise<number | undefined>;
  /** Releases pending waits (WTS_EVENT_FLUSH). */
  releaseWaits(): void;
}

/** A failed call, with GetLastError's code. */
export class WtsCallError extends RasmonError {
  constructor(
    call: string,
    readonly win32Error: number,
  ) {
    super('RASMON_WTS_CALL', `${call} failed (Windows error ${win32Error})`);
    this.name = 'WtsCallError';
  }
}

type Fn = ((...args: unknown[]) => unknown) & { async: (...args: unknown[]) => void };

interface Bindings {
  koffi: KoffiModule;
  enumerateSessionsEx: Fn;
  enumerateSessions: Fn;
  enumerateProcessesEx: Fn;
  enumerateProcesses: Fn;
  querySessionInformation: Fn;
  freeMemory: Fn;
  freeMemoryEx: Fn;
  waitSystemEvent: Fn;
  queryUserToken: Fn;
  getTokenInformation: Fn;
  lookupAccountName: Fn;
  closeHandle: Fn;
  getLastError: Fn;
}

function bind(): Bindings {
  const koffi = loadKoffi();
  const wtsapi = koffi.load('wtsapi32.dll');
  const advapi = koffi.load('advapi32.dll');
  const kernel = koffi.load('kernel32.dll');
  const fn = (lib: typeof wtsapi, prototype: string) => lib.func(prototype) as unknown as Fn;
  return {
    koffi,
    enumerateSessionsEx: fn(
      wtsapi,
      'int __stdcall WTSEnumerateSessionsExW(void *hServer, _Inout_ uint32_t *pLevel, uint32_t Filter, _Out_ void **ppSessionInfo, _Out_ uint32_t *pCount)',
    ),
    enumerateSessions: fn(
      wtsapi,
      'int __stdcall WTSEnumerateSessionsW(void *hServer, uint32_t Reserved, uint32_t Version, _Out_ void **ppSessionInfo, _Out_ uint32_t *pCount)',
    ),
    enumerateProcessesEx: fn(
      wtsapi,
      'int __stdcall WTSEnumerateProcessesExW(void *hServer, _Inout_ uint32_t *pLevel, uint32_t SessionId, _Out_ void **ppProcessInfo, _Out_ uint32_t *pCount)',
    ),
    enumerateProcesses: fn(
      wtsapi,
      'int __stdcall WTSEnumerateProcessesW(void *hServer, uint32_t Reserved, uint32_t Version, _Out_ void **ppProcessInfo, _Out_ uint32_t *pCount)',
    ),
    querySessionInformation: fn(
      wtsapi,
      'int __stdcall WTSQuerySessionInformationW(void *hServer, uint32_t SessionId, int WTSInfoClass, _Out_ void **ppBuffer, _Out_ uint32_t *pBytesReturned)',
    ),
    freeMemory: fn(wtsapi, 'void __stdcall WTSFreeMemory(void *pMemory)'),
    freeMemoryEx: fn(
      wtsapi,
      'int __stdcall WTSFreeMemoryExW(int WTSTypeClass, void *pMemory, uint32_t NumberOfEntries)',
    ),
    waitSystemEvent: fn(
      wtsapi,
      'int __stdcall WTSWaitSystemEvent(void *hServer, uint32_t EventMask, _Out_ uint32_t *pEventFlags)',
    ),
    queryUserToken: fn(wtsapi, 'int __stdcall WTSQueryUserToken(uint32_t SessionId, _Out_ void **phToken)'),
    getTokenInformation: fn(
      advapi,
      'int __stdcall GetTokenInformation(void *TokenHandle, int TokenInformationClass, _Out_ uint8_t *TokenInformation, uint32_t TokenInformationLength, _Out_ uint32_t *ReturnLength)',
    ),
    lookupAccountName: fn(
      advapi,
      'int __stdcall LookupAccountNameW(const char16_t *lpSystemName, const char16_t *lpAccountName, _Out_ uint8_t *Sid, _Inout_ uint32_t *cbSid, _Out_ uint8_t *ReferencedDomainName, _Inout_ uint32_t *cchReferencedDomainName, _Out_ int *peUse)',
    ),
    closeHandle: fn(kernel, 'int __stdcall CloseHandle(void *hObject)'),
    getLastError: fn(kernel, 'uint32_t __stdcall GetLastError(void)'),
  };
}

/** The real calls. Binding happens on first use, so only the `wts` source ever loads koffi. */
export class WtsApi implements WtsCalls {
  private readonly api: Bindings = bind();
  private sessionsEx = true;
  private processesEx = true;
  private readonly stringAt: StringAt = (address) =>
    address === 0n ? undefined : this.api.koffi.decode.string16(address);

  private copy(pointer: unknown, bytes: number): Buffer {
    if (bytes === 0) return Buffer.alloc(0);
    return Buffer.from(new Uint8Array(this.api.koffi.view(pointer, bytes)));
  }

  sessions(): SessionEntry[] {
    const { api } = this;
    const out: unknown[] = [null];
    const count = [0];
    if (this.sessionsEx) {
      if (api.enumerateSessionsEx(null, [1], 0, out, count)) {
        try {
          return decodeSessionInfo1(this.copy(out[0], count[0]! * SESSION_INFO_1W_SIZE), count[0]!, this.stringAt);
        } finally {
          api.freeMemoryEx(WTS_TYPE_SESSION_INFO_LEVEL_1, out[0], count[0]);
        }
      }
      // Not there (wine) or refused: the older call lists the same sessions.
      this.sessionsEx = false;
    }
    if (!api.enumerateSessions(null, 0, 1, out, count))
      throw new WtsCallError('WTSEnumerateSessionsW', api.getLastError() as number);
    let entries: SessionEntry[];
    try {
      entries = decodeSessionInfo(this.copy(out[0], count[0]! * SESSION_INFOW_SIZE), count[0]!, this.stringAt);
    } finally {
      if (out[0]) api.freeMemory(out[0]);
    }
    for (const entry of entries) {
      const user = this.query(entry.sessionId, WtsInfoClass.userName);
      const domain = this.query(entry.sessionId, WtsInfoClass.domainName);
      const userName = user.ok ? decodeWideString(user.value) : undefined;
      const domainName = domain.ok ? decodeWideString(domain.value) : undefined;
      if (userName) entry.userName = userName;
      if (domainName) entry.domainName = domainName;
    }
    return entries;
  }

  processes(): ProcessEntry[] | undefined {
    const { api } = this;
    const out: unknown[] = [null];
    const count = [0];
    if (this.processesEx) {
      if (api.enumerateProcessesEx(null, [1], WTS_ANY_SESSION, out, count)) {
        try {
          return decodeProcessInfoEx(this.copy(out[0], count[0]! * PROCESS_INFO_EXW_SIZE), count[0]!, this.stringAt);
        } finally {
          api.freeMemoryEx(WTS_TYPE_PROCESS_INFO_LEVEL_1, out[0], count[0]);
        }
      }
      this.processesEx = false;
    }
    if (!api.enumerateProcesses(null, 0, 1, out, count)) return undefined;
    try {
      return decodeProcessInfo(this.copy(out[0], count[0]! * PROCESS_INFOW_SIZE), count[0]!, this.stringAt);
    } finally {
      if (out[0]) api.freeMemory(out[0]);
    }
  }

  query(sessionId: number, infoClass: number): Win32Answer<Buffer> {
    const { api } = this;
    const out: unknown[] = [null];
    const bytes = [0];
    // A session can log off between the enumeration and the query: the error (2) says so.
    if (!api.querySessionInformation(null, sessionId, infoClass, out, bytes))
      return failed(api.getLastError() as number);
    try {
      return answered(this.copy(out[0], bytes[0]!));
    } finally {
      if (out[0]) api.freeMemory(out[0]);
    }
  }

  sessionTokenGroups(sessionId: number): Win32Answer<SessionTokenGroups> {
    const { api } = this;
    const token: unknown[] = [null];
    // Needs SE_TCB_NAME: the service runs as LocalSystem.
    // https://learn.microsoft.com/windows/win32/api/wtsapi32/nf-wtsapi32-wtsqueryusertoken
    if (!api.queryUserToken(sessionId, token)) return failed(api.getLastError() as number);
    if (!token[0]) return failed(ERROR_NO_TOKEN);
    try {
      const groups = this.tokenGroups(token[0]);
      if (!groups.ok) return groups;
      const result: SessionTokenGroups = { groups: groups.value };
      const elevation = Buffer.alloc(4);
      if (
        api.getTokenInformation(token[0], TOKEN_ELEVATION_TYPE, elevation, 4, [0]) &&
        elevation.readUInt32LE(0) === TOKEN_ELEVATION_TYPE_LIMITED
      ) {
        const linked = Buffer.alloc(8);
        if (api.getTokenInformation(token[0], TOKEN_LINKED_TOKEN, linked, 8, [0])) {
          const handle = linked.readBigUInt64LE(0);
          try {
            const full = this.tokenGroups(handle);
            if (full.ok) result.linked = full.value;
          } finally {
            api.closeHandle(handle);
          }
        }
      }
      return answered(result);
    } finally {
      api.closeHandle(token[0]);
    }
  }

  private tokenGroups(token: unknown): Win32Answer<TokenGroup[]> {
    const { api, koffi } = { api: this.api, koffi: this.api.koffi };
    let size = 4096;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const buffer = Buffer.alloc(size);
      const needed = [0];
      if (api.getTokenInformation(token, TOKEN_GROUPS, buffer, size, needed)) {
        return answered(decodeTokenGroups(buffer.subarray(0, needed[0]! || size), koffi.address(buffer)));
      }
      const error = api.getLastError() as number;
      if (error !== ERROR_INSUFFICIENT_BUFFER || needed[0]! <= size) return failed(error);
      size = needed[0]!;
    }
    return failed(ERROR_INSUFFICIENT_BUFFER);
  }

  lookupAccountSid(name: string): string | undefined {
    const sid = Buffer.alloc(68);
    const domain = Buffer.alloc(512);
    if (!this.api.lookupAccountName(null, name, sid, [sid.length], domain, [domain.length / 2], [0])) return undefined;
    return sidToString(sid.subarray(0, sidLength(sid)));
  }

  async waitSystemEvent(): Promise<number | undefined> {
    const flags = [0];
    const wait: (...args: unknown[]) => Promise<unknown> = promisify(this.api.waitSystemEvent.async);
    const ok = await wait(null, WTS_EVENT_ALL, flags);
    return ok ? flags[0] : undefined;
  }

  releaseWaits(): void {
    this.api.waitSystemEvent(null, WTS_EVENT_FLUSH, [0]);
  }
}
