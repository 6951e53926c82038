import { describe, expect, it } from 'vitest';
import {
  DIRECTORY_SDDL,
  FILE_SDDL,
  parseDacl,
  SddlError,
  tokenFileDecision,
  untrustedReaders,
} from '../src/windows/dacl.js';

describe('token file DACL decisions (by SID, any display language)', () => {
  it('keeps the DACL the agent sets: SYSTEM and Administrators only', () => {
    expect(tokenFileDecision(FILE_SDDL)).toEqual({ action: 'keep' });
    expect(tokenFileDecision(DIRECTORY_SDDL)).toEqual({ action: 'keep' });
    // The same by numeric SIDs, as Windows may print them, and with an owner and group before the DACL.
    expect(tokenFileDecision('O:BAG:SYD:PAI(A;;FA;;;S-1-5-18)(A;;0x1f01ff;;;S-1-5-32-544)')).toEqual({
      action: 'keep',
    });
  });

  it('locks a file that inherits read access for Users, as a new file under C:\\ProgramData does', () => {
    // The DACL a file created under C:\ProgramData inherits on Windows Server.
    const inherited = 'D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)(A;OICIIOID;GA;;;CO)';
    expect(tokenFileDecision(inherited)).toEqual({ action: 'lock', readers: ['BU'] });
  });

  it('locks a NULL DACL (everyone may do everything) and an Everyone read ACE', () => {
    expect(untrustedReaders('D:NO_ACCESS_CONTROL')).toEqual(['WD']);
    expect(untrustedReaders('O:BA')).toEqual(['WD']);
    expect(untrustedReaders('D:(A;;FR;;;WD)(A;;FA;;;SY)')).toEqual(['WD']);
    expect(untrustedReaders('D:(A;;GR;;;AU)')).toEqual(['AU']);
    expect(untrustedReaders('D:(A;;GA;;;S-1-5-21-1-2-3-1104)')).toEqual(['S-1-5-21-1-2-3-1104']);
  });

  it('does not count rights that cannot read the content, nor inherit-only ACEs', () => {
    // READ_CONTROL and SYNCHRONIZE only: the DACL can be read, the token cannot.
    expect(untrustedReaders('D:(A;;0x120000;;;BU)(A;;FA;;;SY)')).toEqual([]);
    expect(untrustedReaders('D:(A;;RC;;;WD)')).toEqual([]);
    expect(untrustedReaders('D:(A;OICIIO;GA;;;CO)(A;;FA;;;BA)')).toEqual([]);
    expect(untrustedReaders('D:(A;;FW;;;BU)')).toEqual([]);
    // A deny ACE is not trusted to hide an allow: the file is relocked all the same.
    expect(untrustedReaders('D:(D;;FA;;;BU)(A;;FR;;;BU)')).toEqual(['BU']);
  });

  it('parses protection and flags, and rejects what it cannot read', () => {
    expect(parseDacl(FILE_SDDL)).toEqual({
      protected: true,
      aces: [
        { type: 'A', flags: [], mask: 0x1f01ff, sid: 'SY' },
        { type: 'A', flags: [], mask: 0x1f01ff, sid: 'BA' },
      ],
    });
    expect(parseDacl('D:AI(A;ID;FA;;;SY)')?.protected).toBe(false);
    expect(parseDacl('D:PAI(A;ID;FA;;;SY)S:(AU;FA;FA;;;WD)')?.aces).toHaveLength(1);
    expect(() => parseDacl('D:(A;;ZZ;;;SY)')).toThrow(SddlError);
    expect(() => parseDacl('D:(A;;FA)')).toThrow(/malformed/);
  });
});
