import { describe, expect, it } from 'vitest';
import {
  ancestorDecision,
  DIRECTORY_SDDL,
  FILE_SDDL,
  foreignOwnerMessage,
  lockDecision,
  ownerOf,
  parseDacl,
  privateFolder,
  SddlError,
  tokenFileDecision,
  TRUSTED_INSTALLER_SID,
  untrustedReaders,
  untrustedWriters,
  unsafeAncestorMessage,
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

/** An administrator's own account, as the one running `service install`. */
const ADMIN = 'S-1-5-21-1004336348-1177238915-682003330-500';
/** An ordinary user of the RD Session Host. */
const USER = 'S-1-5-21-1004336348-1177238915-682003330-1104';

describe('who may own what the agent locks (owner SIDs in, decision out)', () => {
  it('sets owner Administrators with the protected DACL, on files and folders', () => {
    expect(ownerOf(FILE_SDDL)).toBe('S-1-5-32-544');
    expect(ownerOf(DIRECTORY_SDDL)).toBe('S-1-5-32-544');
    expect(parseDacl(FILE_SDDL)?.protected).toBe(true);
    expect(parseDacl(DIRECTORY_SDDL)?.aces.map((ace) => [ace.sid, ace.flags])).toEqual([
      ['SY', ['OI', 'CI']],
      ['BA', ['OI', 'CI']],
    ]);
  });

  it('reads the owner by alias or by SID, and none when the descriptor has no owner part', () => {
    expect(ownerOf('O:SYG:SYD:P(A;;FA;;;SY)')).toBe('S-1-5-18');
    expect(ownerOf(`O:${USER}G:DUD:AI(A;ID;FA;;;SY)`)).toBe(USER);
    expect(ownerOf('O:s-1-5-32-544D:P')).toBe('S-1-5-32-544');
    expect(ownerOf('D:P(A;;FA;;;SY)')).toBeUndefined();
  });

  it('locks what SYSTEM, Administrators, TrustedInstaller or the installing account own', () => {
    for (const owner of ['SY', 'BA', 'S-1-5-18', 'S-1-5-32-544', TRUSTED_INSTALLER_SID, ADMIN]) {
      expect(lockDecision(`O:${owner}D:AI(A;ID;FA;;;SY)(A;ID;0x1200a9;;;BU)`, ADMIN), owner).toEqual({
        action: 'lock',
      });
    }
    // Under the MSI the installing account is SYSTEM itself.
    expect(lockDecision('O:SYD:P(A;;FA;;;SY)', 'S-1-5-18')).toEqual({ action: 'lock' });
  });

  it('refuses what a user created first, whatever its DACL says, and an entry with no owner', () => {
    // A token file a user created, already "locked" to SYSTEM and Administrators by its DACL: the
    // user is still its owner and may rewrite that DACL at any time.
    expect(lockDecision(`O:${USER}D:P(A;;FA;;;SY)(A;;FA;;;BA)`, ADMIN)).toEqual({ action: 'refuse', owner: USER });
    // A spool folder a user created under C:\ProgramData before the install.
    expect(
      lockDecision(`O:${USER}G:DUD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;OICIIOID;GA;;;CO)(A;ID;FA;;;${USER})`, 'S-1-5-18'),
    ).toEqual({ action: 'refuse', owner: USER });
    // Another well-known account is no better: Users, Everyone, Network Service.
    for (const owner of ['BU', 'WD', 'NS', 'S-1-5-32-545']) {
      expect(lockDecision(`O:${owner}D:P(A;;FA;;;SY)`, ADMIN).action, owner).toBe('refuse');
    }
    // Without knowing the installing account, only SYSTEM, Administrators and TrustedInstaller pass.
    expect(lockDecision(`O:${ADMIN}D:P(A;;FA;;;SY)`, undefined)).toEqual({ action: 'refuse', owner: ADMIN });
    expect(lockDecision('D:P(A;;FA;;;SY)', ADMIN)).toEqual({ action: 'refuse', owner: 'no owner' });
  });

  it('says whose it is and what to do', () => {
    const message = foreignOwnerMessage('C:\\ProgramData\\rasmon\\spool', USER, 'CORP\\mallory');
    expect(message).toContain('C:\\ProgramData\\rasmon\\spool');
    expect(message).toContain(`CORP\\mallory (${USER})`);
    expect(message).toMatch(/Delete it as an administrator .*then run this again/);
    expect(foreignOwnerMessage('C:\\rasmon\\token', 'S-1-5-32-545')).toContain('owned by Users (S-1-5-32-545)');
    expect(foreignOwnerMessage('C:\\rasmon\\token', USER)).toContain(`owned by ${USER},`);
  });
});

describe('a folder the agent may delete in (owner and writers)', () => {
  it('is private once locked: owner Administrators, only SYSTEM and Administrators may change it', () => {
    expect(privateFolder(DIRECTORY_SDDL, 'S-1-5-18')).toBe(true);
    expect(untrustedWriters(DIRECTORY_SDDL)).toEqual([]);
  });

  it('is not private where users may create folders, as under C:\\Windows\\Temp or C:\\ProgramData', () => {
    // C:\Windows\Temp: Users may traverse, create files and create folders (this folder and subfolders).
    const windowsTemp = 'O:SYD:P(A;OICIIO;GA;;;CO)(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;CI;0x100026;;;BU)';
    expect(untrustedWriters(windowsTemp)).toEqual(['BU']);
    expect(privateFolder(windowsTemp, 'S-1-5-18')).toBe(false);
    // C:\ProgramData: Users may create files and folders too.
    const programData = 'O:SYD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)(A;CI;0x100116;;;BU)';
    expect(privateFolder(programData, 'S-1-5-18')).toBe(false);
  });

  it('is not private when a user owns it, even with a DACL that looks locked', () => {
    expect(privateFolder(`O:${USER}D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)`, 'S-1-5-18')).toBe(false);
  });

  it('counts DELETE, WRITE_DAC and WRITE_OWNER as changes, not read-only rights', () => {
    expect(untrustedWriters('O:BAD:P(A;;0x10000;;;BU)')).toEqual(['BU']);
    expect(untrustedWriters('O:BAD:P(A;;WD;;;AU)')).toEqual(['AU']);
    expect(untrustedWriters('O:BAD:P(A;;WO;;;IU)')).toEqual(['IU']);
    expect(untrustedWriters('O:BAD:P(A;;FR;;;BU)(A;;FX;;;WD)')).toEqual([]);
    expect(untrustedWriters('D:NO_ACCESS_CONTROL')).toEqual(['WD']);
  });
});

describe('the folders above what the agent locks (nobody else may move it away)', () => {
  // As Windows Server ships them (icacls, in SDDL).
  const PROGRAM_DATA =
    'O:SYG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICIIO;GA;;;CO)(A;OICI;0x1200a9;;;BU)(A;CI;0x100116;;;BU)';
  const SYSTEM_DRIVE = `O:${TRUSTED_INSTALLER_SID}G:${TRUSTED_INSTALLER_SID}D:PAI(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;OICI;0x1200a9;;;BU)(A;OICIIO;SDGXGWGR;;;AU)(A;;LC;;;AU)`;
  /** A folder an administrator made at the root of C:, inheriting Authenticated Users: Modify. */
  const C_RASMON =
    'O:BAG:DUD:AI(A;OICIID;FA;;;BA)(A;OICIID;FA;;;SY)(A;OICIID;0x1200a9;;;BU)(A;ID;0x1301bf;;;AU)(A;OICIIOID;SDGXGWGR;;;AU)';

  it('takes C:\\ProgramData and the system drive as Windows sets them up', () => {
    expect(ancestorDecision(PROGRAM_DATA, ADMIN)).toEqual({ action: 'ok' });
    expect(ancestorDecision(SYSTEM_DRIVE, ADMIN, true)).toEqual({ action: 'ok' });
    expect(ancestorDecision(DIRECTORY_SDDL, 'S-1-5-18')).toEqual({ action: 'ok' });
  });

  it('refuses a folder where Authenticated Users may rename what is in it, as under the root of C:', () => {
    expect(ancestorDecision(C_RASMON, ADMIN)).toEqual({ action: 'refuse', holders: ['AU'] });
    // The same rights on a volume's root do not let anyone rename the root itself.
    expect(ancestorDecision('O:BAD:PAI(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)(A;OICI;0x1301bf;;;AU)', ADMIN, true)).toEqual({
      action: 'ok',
    });
    // Deleting children, or rewriting the DACL or the owner, is as good as replacing them.
    for (const rights of ['0x40', 'WD', 'WO', 'GA', 'FA']) {
      expect(ancestorDecision(`O:SYD:P(A;;FA;;;SY)(A;;${rights};;;BU)`, ADMIN, true), rights).toEqual({
        action: 'refuse',
        holders: ['BU'],
      });
    }
  });

  it('lets the installing account itself hold any right, as on a folder it created', () => {
    expect(ancestorDecision(`O:${ADMIN}D:(A;OICI;FA;;;${ADMIN})(A;OICI;0x1200a9;;;WD)`, ADMIN)).toEqual({
      action: 'ok',
    });
    expect(ancestorDecision(`O:${ADMIN}D:(A;OICI;FA;;;${ADMIN})(A;OICI;FA;;;${USER})`, ADMIN)).toEqual({
      action: 'refuse',
      holders: [USER],
    });
    expect(privateFolder(`O:${ADMIN}D:(A;OICI;FA;;;${ADMIN})(A;OICI;0x1200a9;;;WD)`, ADMIN)).toBe(true);
  });

  it('refuses a folder a user owns, whatever its DACL', () => {
    expect(ancestorDecision(`O:${USER}D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)`, ADMIN)).toEqual({
      action: 'refuse',
      owner: USER,
    });
  });

  it('says which folder, why, and what to do', () => {
    const message = unsafeAncestorMessage('C:\\rasmon', 'C:\\rasmon\\spool', { action: 'refuse', holders: ['AU'] });
    expect(message).toMatch(
      /^C:\\rasmon lets Authenticated Users \(S-1-5-11\) rename or delete what it holds, so C:\\rasmon\\spool could be moved away/,
    );
    expect(message).toContain('C:\\ProgramData');
    expect(
      unsafeAncestorMessage('C:\\ProgramData\\rasmon', 'C:\\ProgramData\\rasmon\\spool', {
        action: 'refuse',
        owner: USER,
      }),
    ).toContain(`C:\\ProgramData\\rasmon is owned by ${USER}, not by SYSTEM or Administrators`);
  });
});
