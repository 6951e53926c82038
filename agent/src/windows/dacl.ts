/**
 * Who may read a file, decided from its DACL in SDDL form (as GetNamedSecurityInfoW and
 * ConvertSecurityDescriptorToStringSecurityDescriptorW give it). SIDs only, never account names,
 * so the answer is the same on every display language. Pure, so it is tested on Linux.
 */

import { RasmonError } from '@rasmon/protocol/kit';

/** LocalSystem and BUILTIN\Administrators: the only ones who may read the token, spool and logs. */
export const TRUSTED_SIDS: ReadonlySet<string> = new Set(['SY', 'S-1-5-18', 'BA', 'S-1-5-32-544']);

/** Protected (no inherited ACEs), full control for SYSTEM and Administrators only. */
export const FILE_SDDL = 'D:P(A;;FA;;;SY)(A;;FA;;;BA)';
/** The same for a directory, inherited by every file and folder created in it. */
export const DIRECTORY_SDDL = 'D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)';

export interface Ace {
  type: string;
  flags: string[];
  mask: number;
  sid: string;
}

// Access-right abbreviations of SDDL (generic, standard, file and directory-service aliases).
const RIGHTS: Record<string, number> = {
  GA: 0x10000000,
  GX: 0x20000000,
  GW: 0x40000000,
  GR: 0x80000000,
  FA: 0x001f01ff,
  FR: 0x00120089,
  FW: 0x00120116,
  FX: 0x001200a0,
  RC: 0x00020000,
  SD: 0x00010000,
  WD: 0x00040000,
  WO: 0x00080000,
  CC: 0x00000001,
  DC: 0x00000002,
  LC: 0x00000004,
  SW: 0x00000008,
  RP: 0x00000010,
  WP: 0x00000020,
  DT: 0x00000040,
  LO: 0x00000080,
  CR: 0x00000100,
  KA: 0x000f003f,
  KR: 0x00020019,
  KW: 0x00020006,
  KX: 0x00020019,
};

/** Bits that let a holder read a file's content: FILE_READ_DATA, GENERIC_READ, GENERIC_ALL, MAXIMUM_ALLOWED. */
const READ_DATA = 0x00000001 | 0x80000000 | 0x10000000 | 0x02000000;

export class SddlError extends RasmonError {
  constructor(message: string) {
    super('RASMON_SDDL', message);
    this.name = 'SddlError';
  }
}

function parseRights(text: string): number {
  if (/^0x[0-9a-f]+$/i.test(text)) return Number.parseInt(text.slice(2), 16) >>> 0;
  if (/^\d+$/.test(text)) return Number(text) >>> 0;
  if (text.length % 2 !== 0) throw new SddlError(`unknown access rights "${text}"`);
  let mask = 0;
  for (let i = 0; i < text.length; i += 2) {
    const right = RIGHTS[text.slice(i, i + 2)];
    if (right === undefined) throw new SddlError(`unknown access right "${text.slice(i, i + 2)}"`);
    mask = (mask | right) >>> 0;
  }
  return mask;
}

/**
 * The DACL part of an SDDL string. `null` for a NULL DACL (`D:NO_ACCESS_CONTROL`, or no `D:` at
 * all), which grants everyone everything.
 */
export function parseDacl(sddl: string): { protected: boolean; aces: Ace[] } | null {
  const start = sddl.indexOf('D:');
  if (start < 0) return null;
  // The DACL runs until the SACL (`S:`) or the end; owner and group come before it.
  const rest = sddl.slice(start + 2);
  const end = rest.search(/S:/);
  const dacl = end < 0 ? rest : rest.slice(0, end);
  const flagsEnd = dacl.indexOf('(');
  const flags = flagsEnd < 0 ? dacl : dacl.slice(0, flagsEnd);
  if (flags.includes('NO_ACCESS_CONTROL')) return null;
  const aces: Ace[] = [];
  for (const match of dacl.matchAll(/\(([^)]*)\)/g)) {
    const fields = match[1]!.split(';');
    if (fields.length < 6) throw new SddlError(`malformed ACE "(${match[1]})"`);
    const [type, aceFlags, rights, , , sid] = fields as [string, string, string, string, string, string];
    aces.push({ type, flags: aceFlags.match(/../g) ?? [], mask: parseRights(rights), sid: sid.toUpperCase() });
  }
  return { protected: /P/.test(flags.replace(/AI|AR/g, '')), aces };
}

/**
 * The SIDs other than SYSTEM and Administrators that an allow ACE lets read the object's content.
 * Deny ACEs are not subtracted: a DACL that needs one to be safe is rewritten all the same.
 * Inherit-only ACEs (IO) apply to children, not to the object, and are skipped.
 */
export function untrustedReaders(sddl: string): string[] {
  const dacl = parseDacl(sddl);
  if (dacl === null) return ['WD'];
  const readers = new Set<string>();
  for (const ace of dacl.aces) {
    if (!['A', 'OA', 'XA', 'ZA'].includes(ace.type)) continue;
    if (ace.flags.includes('IO')) continue;
    if ((ace.mask & READ_DATA) === 0) continue;
    if (!TRUSTED_SIDS.has(ace.sid)) readers.add(ace.sid);
  }
  return [...readers];
}

export type TokenFileDecision = { action: 'keep' } | { action: 'lock'; readers: string[] };

/**
 * What `service install` does with the token file: keep a DACL only SYSTEM and Administrators can
 * read, otherwise lock it (and refuse to install when locking fails, which the caller decides).
 */
export function tokenFileDecision(sddl: string): TokenFileDecision {
  const readers = untrustedReaders(sddl);
  return readers.length === 0 ? { action: 'keep' } : { action: 'lock', readers };
}

const WELL_KNOWN: Record<string, string> = {
  WD: 'Everyone (S-1-1-0)',
  AU: 'Authenticated Users (S-1-5-11)',
  BU: 'Users (S-1-5-32-545)',
  IU: 'Interactive (S-1-5-4)',
  DU: 'Domain Users',
  CO: 'Creator Owner (S-1-3-0)',
  OW: 'Owner Rights (S-1-3-4)',
  RD: 'Remote Desktop Users (S-1-5-32-555)',
  AN: 'Anonymous (S-1-5-7)',
  NS: 'Network Service (S-1-5-20)',
  LS: 'Local Service (S-1-5-19)',
};

/** A SID for a message: the well-known name in English with the SID itself, or the SID. */
export function describeSid(sid: string): string {
  return WELL_KNOWN[sid] ?? sid;
}
