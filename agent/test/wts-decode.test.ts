/**
 * The WTS and token structures, laid out byte by byte as the Windows SDK documents them for x64
 * (wtsapi32.h, winnt.h), decoded as the `wts` source decodes what Windows returns. Offsets here are
 * written out from the SDK's field lists, not taken from the decoder.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeClientAddress,
  decodeProcessInfo,
  decodeProcessInfoEx,
  decodeProtocolType,
  decodeSessionInfo,
  decodeSessionInfo1,
  decodeTokenGroups,
  decodeWideString,
  decodeWtsInfo,
  fileTimeToMs,
  imagesBySession,
  sidToString,
  WtsDecodeError,
} from '../src/windows/wts-decode.js';

/** A pretend address space: strings at made-up addresses, as Windows' pointers would be. */
function memory() {
  const strings = new Map<bigint, string>();
  let next = 0x7ff0_0000_1000n;
  return {
    put(text: string): bigint {
      const address = next;
      next += 0x100n;
      strings.set(address, text);
      return address;
    },
    stringAt: (address: bigint) => (address === 0n ? undefined : strings.get(address)),
  };
}

const FILETIME_EPOCH_OFFSET = 116_444_736_000_000_000n;
const fileTime = (ms: number) => BigInt(ms) * 10_000n + FILETIME_EPOCH_OFFSET;

function wide(text: string, chars: number): Buffer {
  const buffer = Buffer.alloc(chars * 2);
  buffer.write(text, 'utf16le');
  return buffer;
}

describe('WTS_SESSION_INFO_1W (WTSEnumerateSessionsExW, level 1)', () => {
  it('reads state, id and the pointed-to names of each 56-byte entry', () => {
    const mem = memory();
    const buffer = Buffer.alloc(2 * 56);
    // [0] the services session: no names at all.
    buffer.writeUInt32LE(0, 0); // ExecEnvId
    buffer.writeUInt32LE(4, 4); // State: WTSDisconnected
    buffer.writeUInt32LE(0, 8); // SessionId
    // [1] an RDP session.
    buffer.writeUInt32LE(1, 56 + 0);
    buffer.writeUInt32LE(0, 56 + 4); // WTSActive
    buffer.writeUInt32LE(7, 56 + 8);
    buffer.writeBigUInt64LE(mem.put('RDP-Tcp#3'), 56 + 16); // pSessionName
    buffer.writeBigUInt64LE(mem.put('RDSH-01'), 56 + 24); // pHostName
    buffer.writeBigUInt64LE(mem.put('k.schröder'), 56 + 32); // pUserName
    buffer.writeBigUInt64LE(mem.put('CORP'), 56 + 40); // pDomainName
    buffer.writeBigUInt64LE(0n, 56 + 48); // pFarmName
    expect(decodeSessionInfo1(buffer, 2, mem.stringAt)).toEqual([
      { sessionId: 0, state: 'disconnected' },
      { sessionId: 7, state: 'active', sessionName: 'RDP-Tcp#3', userName: 'k.schröder', domainName: 'CORP' },
    ]);
  });

  it('refuses a buffer shorter than count entries and an unknown state', () => {
    const mem = memory();
    expect(() => decodeSessionInfo1(Buffer.alloc(100), 2, mem.stringAt)).toThrow(WtsDecodeError);
    const buffer = Buffer.alloc(56);
    buffer.writeUInt32LE(10, 4);
    expect(() => decodeSessionInfo1(buffer, 1, mem.stringAt)).toThrow(/unknown session state 10/);
  });
});

describe('WTS_SESSION_INFOW (WTSEnumerateSessionsW)', () => {
  it('reads id, station name and state of each 24-byte entry', () => {
    const mem = memory();
    const buffer = Buffer.alloc(2 * 24);
    buffer.writeUInt32LE(65536, 0); // the listener
    buffer.writeBigUInt64LE(mem.put('RDP-Tcp'), 8);
    buffer.writeUInt32LE(6, 16); // WTSListen
    buffer.writeUInt32LE(2, 24);
    buffer.writeBigUInt64LE(0n, 24 + 8);
    buffer.writeUInt32LE(4, 24 + 16);
    expect(decodeSessionInfo(buffer, 2, mem.stringAt)).toEqual([
      { sessionId: 65536, state: 'listen', sessionName: 'RDP-Tcp' },
      { sessionId: 2, state: 'disconnected' },
    ]);
  });
});

describe('WTSINFOW (WTSSessionInfo)', () => {
  it('reads the logon time at offset 200 and the connect time at 176 of the 216 bytes', () => {
    const buffer = Buffer.alloc(216);
    buffer.writeUInt32LE(0, 0); // State
    buffer.writeUInt32LE(7, 4); // SessionId
    wide('RDP-Tcp#3', 32).copy(buffer, 32); // WinStationName[32]
    wide('CORP', 17).copy(buffer, 96); // Domain[17]
    wide('k.schröder', 21).copy(buffer, 130); // UserName[21]
    const logon = Date.UTC(2026, 11, 1, 8, 30, 15, 250);
    buffer.writeBigInt64LE(fileTime(logon + 1000), 176); // ConnectTime
    buffer.writeBigInt64LE(0n, 184); // DisconnectTime
    buffer.writeBigInt64LE(fileTime(logon + 60_000), 192); // LastInputTime
    buffer.writeBigInt64LE(fileTime(logon), 200); // LogonTime
    buffer.writeBigInt64LE(fileTime(logon + 3_600_000), 208); // CurrentTime
    expect(decodeWtsInfo(buffer)).toEqual({
      state: 'active',
      sessionId: 7,
      logonTime: logon,
      connectTime: logon + 1000,
    });
  });

  it('leaves the logon time out when Windows has none (0)', () => {
    expect(decodeWtsInfo(Buffer.alloc(216)).logonTime).toBeUndefined();
    expect(fileTimeToMs(0n)).toBeUndefined();
    expect(fileTimeToMs(FILETIME_EPOCH_OFFSET)).toBe(0);
    expect(() => decodeWtsInfo(Buffer.alloc(208))).toThrow(WtsDecodeError);
  });
});

describe('WTS_CLIENT_ADDRESS', () => {
  const address = (family: number, bytes: number[], at: number) => {
    const buffer = Buffer.alloc(24);
    buffer.writeUInt32LE(family, 0);
    Buffer.from(bytes).copy(buffer, 4 + at);
    return buffer;
  };

  it('reads AF_INET from Address[2..5], after the port', () => {
    expect(decodeClientAddress(address(2, [0x0d, 0x3d, 10, 20, 30, 40], 0))).toBe('10.20.30.40');
  });

  it('reads AF_INET6 from Address[0..15] as the documented example lays it out, in RFC 5952 text', () => {
    const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x42];
    expect(decodeClientAddress(address(23, v6, 0))).toBe('2001:db8::42');
    const full = [0xfe, 0x80, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7];
    expect(decodeClientAddress(address(23, full, 0))).toBe('fe80:1:2:3:4:5:6:7');
    // The page's own example: "FFFF::1".
    expect(decodeClientAddress(address(23, [0xff, 0xff, ...Array<number>(13).fill(0), 1], 0))).toBe('ffff::1');
  });

  it('reads AF_INET6 from Address[2..17] after two zero bytes, as Windows has been seen to report it', () => {
    // fe80::b33f as a Windows Server host reported it: 0, 0, 254, 128, ...
    const linkLocal = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb3, 0x3f];
    expect(decodeClientAddress(address(23, [0, 0, ...linkLocal], 0))).toBe('fe80::b33f');
    const global = [0x20, 0x01, 0x0d, 0xb8, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05];
    expect(decodeClientAddress(address(23, [0, 0, ...global], 0))).toBe('2001:db8:a::5');
  });

  it('has no address for the console (AF_UNSPEC), 0.0.0.0 or ::', () => {
    expect(decodeClientAddress(address(0, [], 0))).toBeUndefined();
    expect(decodeClientAddress(address(2, [0, 0, 0, 0, 0, 0], 0))).toBeUndefined();
    expect(decodeClientAddress(address(23, [], 0))).toBeUndefined();
  });
});

describe('the text and USHORT classes', () => {
  it('reads a UTF-16 string up to its NUL, empty as none', () => {
    expect(decodeWideString(Buffer.concat([wide('LAPTOP-ALICE', 12), Buffer.alloc(2)]))).toBe('LAPTOP-ALICE');
    expect(decodeWideString(Buffer.alloc(2))).toBeUndefined();
    expect(decodeProtocolType(Buffer.from([2, 0]))).toBe(2);
    expect(decodeProtocolType(Buffer.alloc(0))).toBeUndefined();
  });
});

describe('WTS_PROCESS_INFO_EXW and WTS_PROCESS_INFOW', () => {
  it('reads session, process id and image name of each 64-byte (Ex) or 24-byte entry', () => {
    const mem = memory();
    const ex = Buffer.alloc(3 * 64);
    const rows: Array<[number, number, string]> = [
      [7, 4242, 'rdpinit.exe'],
      [7, 4300, 'RdpShell.exe'],
      [8, 5000, 'explorer.exe'],
    ];
    const plain = Buffer.alloc(3 * 24);
    rows.forEach(([session, pid, name], i) => {
      const pointer = mem.put(name);
      ex.writeUInt32LE(session, i * 64);
      ex.writeUInt32LE(pid, i * 64 + 4);
      ex.writeBigUInt64LE(pointer, i * 64 + 8); // pProcessName
      ex.writeBigUInt64LE(0x1234n, i * 64 + 16); // pUserSid
      ex.writeUInt32LE(12, i * 64 + 24); // NumberOfThreads
      plain.writeUInt32LE(session, i * 24);
      plain.writeUInt32LE(pid, i * 24 + 4);
      plain.writeBigUInt64LE(pointer, i * 24 + 8);
    });
    const expected = rows.map(([sessionId, processId, name]) => ({ sessionId, processId, name }));
    expect(decodeProcessInfoEx(ex, 3, mem.stringAt)).toEqual(expected);
    expect(decodeProcessInfo(plain, 3, mem.stringAt)).toEqual(expected);
    expect(imagesBySession(expected)).toEqual(
      new Map([
        [7, ['rdpinit.exe', 'rdpshell.exe']],
        [8, ['explorer.exe']],
      ]),
    );
  });
});

/** A binary SID: revision 1, authority big-endian, sub-authorities little-endian. */
function sid(authority: number, ...subs: number[]): Buffer {
  const buffer = Buffer.alloc(8 + subs.length * 4);
  buffer.writeUInt8(1, 0);
  buffer.writeUInt8(subs.length, 1);
  buffer.writeUIntBE(authority, 2, 6);
  subs.forEach((sub, i) => buffer.writeUInt32LE(sub, 8 + i * 4));
  return buffer;
}

describe('SIDs and TOKEN_GROUPS', () => {
  it('writes SIDs as S-1-…', () => {
    expect(sidToString(sid(5, 32, 544))).toBe('S-1-5-32-544');
    expect(sidToString(sid(5, 21, 3_623_811_015, 3_361_044_348, 30_300_820, 1013))).toBe(
      'S-1-5-21-3623811015-3361044348-30300820-1013',
    );
    expect(() => sidToString(Buffer.from([2, 0, 0, 0, 0, 0, 0, 5]))).toThrow(WtsDecodeError);
  });

  it('reads GroupCount, the 16-byte SID_AND_ATTRIBUTES and the SIDs they point to in the same buffer', () => {
    const base = 0x2_0000_0000n;
    const sids = [sid(1, 0), sid(5, 32, 544), sid(5, 21, 1, 2, 3, 1107)];
    const header = 8 + sids.length * 16;
    const buffer = Buffer.alloc(header + sids.reduce((n, s) => n + s.length, 0));
    buffer.writeUInt32LE(sids.length, 0);
    let at = header;
    const attributes = [0x7, 0x10, 0x7]; // enabled; deny-only (UAC-filtered Administrators); enabled
    sids.forEach((s, i) => {
      buffer.writeBigUInt64LE(base + BigInt(at), 8 + i * 16);
      buffer.writeUInt32LE(attributes[i]!, 8 + i * 16 + 8);
      s.copy(buffer, at);
      at += s.length;
    });
    expect(decodeTokenGroups(buffer, base)).toEqual([
      { sid: 'S-1-1-0', attributes: 0x7 },
      { sid: 'S-1-5-32-544', attributes: 0x10 },
      { sid: 'S-1-5-21-1-2-3-1107', attributes: 0x7 },
    ]);
    buffer.writeBigUInt64LE(base - 8n, 8);
    expect(() => decodeTokenGroups(buffer, base)).toThrow(/outside the buffer/);
  });
});
