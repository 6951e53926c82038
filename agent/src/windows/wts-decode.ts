/**
 * The WTS and token structures as the Windows SDK lays them out for x64, decoded from plain Buffers.
 * No FFI here: the calls (wtsapi.ts) copy what Windows returned into Buffers and pass a reader for the
 * strings that the structures point to, so every layout is unit-tested on any machine.
 *
 * Layouts (x64: pointers 8 bytes and 8-aligned, DWORD and enums 4 bytes):
 * - WTS_SESSION_INFO_1W (56): ExecEnvId 0, State 4, SessionId 8, pSessionName 16, pHostName 24,
 *   pUserName 32, pDomainName 40, pFarmName 48.
 * - WTS_SESSION_INFOW (24): SessionId 0, pWinStationName 8, State 16.
 * - WTSINFOW (216): State 0, SessionId 4, six DWORD counters, WinStationName WCHAR[32] 32,
 *   Domain WCHAR[17] 96, UserName WCHAR[21] 130, then (aligned to 176) the LARGE_INTEGER times
 *   ConnectTime 176, DisconnectTime 184, LastInputTime 192, LogonTime 200, CurrentTime 208.
 * - WTS_CLIENT_ADDRESS (24): AddressFamily DWORD 0, Address BYTE[20] 4. AF_INET: the four bytes at
 *   Address[2] (after the port, as in a sockaddr_in); AF_INET6: see decodeClientAddress.
 * - WTS_PROCESS_INFO_EXW (64): SessionId 0, ProcessId 4, pProcessName 8, pUserSid 16, then counters.
 * - WTS_PROCESS_INFOW (24): SessionId 0, ProcessId 4, pProcessName 8, pUserSid 16.
 * - TOKEN_GROUPS: GroupCount DWORD 0, Groups at 8: SID_AND_ATTRIBUTES (16) { PSID Sid 0,
 *   DWORD Attributes 8 }; the SIDs follow in the same buffer.
 * - SID: Revision 0, SubAuthorityCount 1, IdentifierAuthority 6 bytes big-endian at 2,
 *   SubAuthority DWORD[] at 8.
 */
import { RasmonError } from '@rasmon/protocol/kit';
import type { RawState } from './raw-session.js';

export const SESSION_INFO_1W_SIZE = 56;
export const SESSION_INFOW_SIZE = 24;
export const WTSINFOW_SIZE = 216;
export const CLIENT_ADDRESS_SIZE = 24;
export const PROCESS_INFO_EXW_SIZE = 64;
export const PROCESS_INFOW_SIZE = 24;
export const SID_AND_ATTRIBUTES_SIZE = 16;

/** WTS_CONNECTSTATE_CLASS, by value. */
export const CONNECT_STATES: readonly RawState[] = [
  'active',
  'connected',
  'connectquery',
  'shadow',
  'disconnected',
  'idle',
  'listen',
  'reset',
  'down',
  'init',
];

/** Windows' answer does not have the documented shape: the whole list is refused. */
export class WtsDecodeError extends RasmonError {
  constructor(message: string) {
    super('RASMON_WTS_DECODE', message);
    this.name = 'WtsDecodeError';
  }
}

/** Reads the NUL-terminated UTF-16 string at a pointer; undefined for a null pointer. */
export type StringAt = (address: bigint) => string | undefined;

export interface SessionEntry {
  sessionId: number;
  state: RawState;
  sessionName?: string;
  userName?: string;
  domainName?: string;
}

export interface ProcessEntry {
  sessionId: number;
  processId: number;
  name: string;
}

function need(buffer: Buffer, bytes: number, what: string): void {
  if (buffer.length < bytes) throw new WtsDecodeError(`${what}: ${buffer.length} bytes, ${bytes} expected`);
}

function state(value: number, what: string): RawState {
  const name = CONNECT_STATES[value];
  if (!name) throw new WtsDecodeError(`${what}: unknown session state ${value}`);
  return name;
}

function text(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function withText<T extends object>(entry: T, fields: Record<string, string | undefined>): T {
  for (const [key, value] of Object.entries(fields))
    if (text(value) !== undefined) Object.assign(entry, { [key]: value });
  return entry;
}

/** `count` WTS_SESSION_INFO_1W entries, as WTSEnumerateSessionsExW returns them (level 1). */
export function decodeSessionInfo1(buffer: Buffer, count: number, stringAt: StringAt): SessionEntry[] {
  need(buffer, count * SESSION_INFO_1W_SIZE, 'WTS_SESSION_INFO_1W list');
  const entries: SessionEntry[] = [];
  for (let i = 0; i < count; i += 1) {
    const at = i * SESSION_INFO_1W_SIZE;
    const entry: SessionEntry = {
      sessionId: buffer.readUInt32LE(at + 8),
      state: state(buffer.readUInt32LE(at + 4), `session [${i}]`),
    };
    entries.push(
      withText(entry, {
        sessionName: stringAt(buffer.readBigUInt64LE(at + 16)),
        userName: stringAt(buffer.readBigUInt64LE(at + 32)),
        domainName: stringAt(buffer.readBigUInt64LE(at + 40)),
      }),
    );
  }
  return entries;
}

/** `count` WTS_SESSION_INFOW entries (WTSEnumerateSessionsW): no user; asked per session. */
export function decodeSessionInfo(buffer: Buffer, count: number, stringAt: StringAt): SessionEntry[] {
  need(buffer, count * SESSION_INFOW_SIZE, 'WTS_SESSION_INFOW list');
  const entries: SessionEntry[] = [];
  for (let i = 0; i < count; i += 1) {
    const at = i * SESSION_INFOW_SIZE;
    const entry: SessionEntry = {
      sessionId: buffer.readUInt32LE(at),
      state: state(buffer.readUInt32LE(at + 16), `session [${i}]`),
    };
    entries.push(withText(entry, { sessionName: stringAt(buffer.readBigUInt64LE(at + 8)) }));
  }
  return entries;
}

/** FILETIME (100 ns since 1601-01-01 UTC) as Unix ms; undefined for 0 (not known). */
export function fileTimeToMs(fileTime: bigint): number | undefined {
  if (fileTime <= 0n) return undefined;
  return Number((fileTime - 116_444_736_000_000_000n) / 10_000n);
}

export interface WtsInfo {
  state: RawState;
  sessionId: number;
  logonTime?: number;
  connectTime?: number;
}

/** WTSINFOW (WTSQuerySessionInformationW, WTSSessionInfo): the times; names come uncut elsewhere. */
export function decodeWtsInfo(buffer: Buffer): WtsInfo {
  need(buffer, WTSINFOW_SIZE, 'WTSINFOW');
  const info: WtsInfo = { state: state(buffer.readUInt32LE(0), 'WTSINFOW'), sessionId: buffer.readUInt32LE(4) };
  const logon = fileTimeToMs(buffer.readBigInt64LE(200));
  const connect = fileTimeToMs(buffer.readBigInt64LE(176));
  if (logon !== undefined) info.logonTime = logon;
  if (connect !== undefined) info.connectTime = connect;
  return info;
}

const AF_INET = 2;
const AF_INET6 = 23;

/**
 * WTS_CLIENT_ADDRESS as text; undefined for no address (the console, an unspecified address).
 *
 * AF_INET: Address[2..5], as documented ("offset by two bytes from the start of the Address member").
 * https://learn.microsoft.com/windows/win32/api/wtsapi32/ns-wtsapi32-wts_client_address
 *
 * AF_INET6: the same page's example puts the sixteen bytes at Address[0..15], but Windows itself has
 * been seen to put them at Address[2..17], after two zero bytes as for AF_INET: a Windows Server
 * 2008 host reported a client at fe80::b33f as the bytes 0, 0, 254, 128, … (pywin32 issue #664), and
 * Cassia reads Address[2..17] (issue #39); the page's AF_INET text was itself wrong until 2022
 * (MicrosoftDocs/sdk-api pull request #1183). So: when Address[0..1] are zero, the address is at
 * Address[2..17]; otherwise at Address[0..15], as the page's example has it. The two can only be
 * confused for an address of ::/16 (loopback, IPv4-compatible) laid out as the example, which no
 * RDP client reports.
 */
export function decodeClientAddress(buffer: Buffer): string | undefined {
  need(buffer, CLIENT_ADDRESS_SIZE, 'WTS_CLIENT_ADDRESS');
  const family = buffer.readUInt32LE(0);
  if (family === AF_INET) {
    const bytes = buffer.subarray(6, 10);
    return bytes.every((b) => b === 0) ? undefined : [...bytes].join('.');
  }
  if (family === AF_INET6) {
    const start = buffer.readUInt16LE(4) === 0 ? 6 : 4;
    const bytes = buffer.subarray(start, start + 16);
    if (bytes.every((b) => b === 0)) return undefined;
    return ipv6Text(bytes);
  }
  return undefined;
}

/** RFC 5952 text: lower case, leading zeros dropped, the longest run of 2+ zero groups as `::`. */
function ipv6Text(bytes: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** A UTF-16LE string buffer (WTSQuerySessionInformationW's text classes), up to its first NUL. */
export function decodeWideString(buffer: Buffer): string | undefined {
  let end = 0;
  while (end + 1 < buffer.length && buffer.readUInt16LE(end) !== 0) end += 2;
  return text(buffer.toString('utf16le', 0, end));
}

/** WTSClientProtocolType: a USHORT (0 console, 1 legacy, 2 RDP). */
export function decodeProtocolType(buffer: Buffer): number | undefined {
  return buffer.length >= 2 ? buffer.readUInt16LE(0) : undefined;
}

function decodeProcesses(
  buffer: Buffer,
  count: number,
  size: number,
  stringAt: StringAt,
  what: string,
): ProcessEntry[] {
  need(buffer, count * size, what);
  const entries: ProcessEntry[] = [];
  for (let i = 0; i < count; i += 1) {
    const at = i * size;
    const name = stringAt(buffer.readBigUInt64LE(at + 8));
    if (!name) continue;
    entries.push({ sessionId: buffer.readUInt32LE(at), processId: buffer.readUInt32LE(at + 4), name });
  }
  return entries;
}

/** `count` WTS_PROCESS_INFO_EXW entries (WTSEnumerateProcessesExW, level 1). */
export function decodeProcessInfoEx(buffer: Buffer, count: number, stringAt: StringAt): ProcessEntry[] {
  return decodeProcesses(buffer, count, PROCESS_INFO_EXW_SIZE, stringAt, 'WTS_PROCESS_INFO_EXW list');
}

/** `count` WTS_PROCESS_INFOW entries (WTSEnumerateProcessesW). */
export function decodeProcessInfo(buffer: Buffer, count: number, stringAt: StringAt): ProcessEntry[] {
  return decodeProcesses(buffer, count, PROCESS_INFOW_SIZE, stringAt, 'WTS_PROCESS_INFOW list');
}

/** Image names per session, lower case, each once, sorted. */
export function imagesBySession(processes: readonly ProcessEntry[]): Map<number, string[]> {
  const sets = new Map<number, Set<string>>();
  for (const { sessionId, name } of processes) {
    let set = sets.get(sessionId);
    if (!set) sets.set(sessionId, (set = new Set()));
    set.add(name.toLowerCase());
  }
  return new Map([...sets].map(([id, set]) => [id, [...set].sort()]));
}

/** A binary SID at `offset` as `S-1-5-32-544`. */
export function sidToString(buffer: Buffer, offset = 0): string {
  need(buffer, offset + 8, 'SID');
  const revision = buffer.readUInt8(offset);
  const subCount = buffer.readUInt8(offset + 1);
  if (revision !== 1 || subCount > 15)
    throw new WtsDecodeError(`SID: revision ${revision}, ${subCount} sub-authorities`);
  need(buffer, offset + 8 + subCount * 4, 'SID');
  const authority = buffer.readUIntBE(offset + 2, 6);
  const parts = [`S-1-${authority}`];
  for (let i = 0; i < subCount; i += 1) parts.push(String(buffer.readUInt32LE(offset + 8 + i * 4)));
  return parts.join('-');
}

/** Length in bytes of the binary SID at `offset`. */
export function sidLength(buffer: Buffer, offset = 0): number {
  need(buffer, offset + 2, 'SID');
  return 8 + buffer.readUInt8(offset + 1) * 4;
}

export interface TokenGroup {
  sid: string;
  attributes: number;
}

/**
 * TOKEN_GROUPS as GetTokenInformation(TokenGroups) wrote it into `buffer`, which sat at `address`:
 * each group's SID pointer points into the same buffer.
 */
export function decodeTokenGroups(buffer: Buffer, address: bigint): TokenGroup[] {
  need(buffer, 8, 'TOKEN_GROUPS');
  const count = buffer.readUInt32LE(0);
  need(buffer, 8 + count * SID_AND_ATTRIBUTES_SIZE, 'TOKEN_GROUPS');
  const groups: TokenGroup[] = [];
  for (let i = 0; i < count; i += 1) {
    const at = 8 + i * SID_AND_ATTRIBUTES_SIZE;
    const offset = buffer.readBigUInt64LE(at) - address;
    if (offset < 0n || offset >= BigInt(buffer.length))
      throw new WtsDecodeError(`TOKEN_GROUPS [${i}]: SID outside the buffer`);
    groups.push({ sid: sidToString(buffer, Number(offset)), attributes: buffer.readUInt32LE(at + 8) });
  }
  return groups;
}
