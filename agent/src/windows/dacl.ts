/**
 * Who may read a file, decided from its DACL in SDDL form (as GetNamedSecurityInfoW and
 * ConvertSecurityDescriptorToStringSecurityDescriptorW give it). SIDs only, never account names,
 * so the answer is the same on every display language. Pure, so it is tested on Linux.
 */

import { RasmonError } from '@rasmon/protocol/kit';

/** LocalSystem and BUILTIN\Administrators: the only ones who may read the token, spool and logs. */
export const TRUSTED_SIDS: ReadonlySet<string> = new Set(['SY', 'S-1-5-18', 'BA', 'S-1-5-32-544']);

/** NT SERVICE\TrustedInstaller, which owns what Windows itself installs. */
export const TRUSTED_INSTALLER_SID = 'S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464';

/**
 * Owned by Administrators; protected (no inherited ACEs), full control for SYSTEM and
 * Administrators only. The owner matters as much as the DACL: an owner may always rewrite the DACL.
 */
export const FILE_SDDL = 'O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)';
/** The same for a directory, inherited by every file and folder created in it. */
export const DIRECTORY_SDDL = 'O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)';

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
/**
 * Bits that let a holder take a folder's entry away or put another in its place: DELETE (rename or
 * delete the folder itself), FILE_DELETE_CHILD (of what it holds), WRITE_DAC, WRITE_OWNER,
 * GENERIC_ALL, MAXIMUM_ALLOWED.
 */
const REPLACE = (0x10000 | 0x40 | 0x40000 | 0x80000 | 0x10000000 | 0x02000000) >>> 0;
/**
 * Bits that let a holder change an object or what a folder holds: write and append data (create
 * files and folders), extended attributes and attributes, delete a child, DELETE, WRITE_DAC,
 * WRITE_OWNER, GENERIC_WRITE, GENERIC_ALL, MAXIMUM_ALLOWED.
 */
const CHANGE =
  (0x2 | 0x4 | 0x10 | 0x40 | 0x100 | 0x10000 | 0x40000 | 0x80000 | 0x40000000 | 0x10000000 | 0x02000000) >>> 0;

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
  return untrustedHolders(sddl, READ_DATA);
}

/** The SIDs other than SYSTEM and Administrators that an allow ACE lets change the object (or create in a folder). */
export function untrustedWriters(sddl: string): string[] {
  return untrustedHolders(sddl, CHANGE);
}

function untrustedHolders(sddl: string, rights: number): string[] {
  const dacl = parseDacl(sddl);
  if (dacl === null) return ['WD'];
  const holders = new Set<string>();
  for (const ace of dacl.aces) {
    if (!['A', 'OA', 'XA', 'ZA'].includes(ace.type)) continue;
    if (ace.flags.includes('IO')) continue;
    if ((ace.mask & rights) >>> 0 === 0) continue;
    if (!TRUSTED_SIDS.has(ace.sid)) holders.add(ace.sid);
  }
  return [...holders];
}

const OWNER_ALIASES: Record<string, string> = { SY: 'S-1-5-18', BA: 'S-1-5-32-544' };

/**
 * The owner of an SDDL string (`O:BA`, `O:S-1-5-21-…`) as a SID (the aliases of SYSTEM and
 * Administrators spelled out); undefined when the string names none.
 */
export function ownerOf(sddl: string): string | undefined {
  const match = /^O:(S-1-[0-9-]+|[A-Z]{2})/i.exec(sddl);
  if (!match) return undefined;
  const owner = match[1]!.toUpperCase();
  return OWNER_ALIASES[owner] ?? owner;
}

/**
 * Whom the agent trusts to own its files: SYSTEM, Administrators, TrustedInstaller, and the account
 * running the install itself (an administrator, or SYSTEM under the MSI: on a client Windows an
 * elevated administrator's new files belong to that account, not to the Administrators group).
 */
export function trustedOwner(owner: string, self: string | undefined): boolean {
  const sid = owner.toUpperCase();
  return (
    sid === 'S-1-5-18' ||
    sid === 'S-1-5-32-544' ||
    sid === TRUSTED_INSTALLER_SID ||
    (self !== undefined && sid === self.toUpperCase())
  );
}

const isSelf = (sid: string, self: string | undefined) => self !== undefined && sid === self.toUpperCase();

export type LockDecision = { action: 'lock' } | { action: 'refuse'; owner: string };

/**
 * What locking does with an entry that exists already, from its security descriptor as SDDL (owner
 * included) and the SID of the account locking it: lock it (owner Administrators, the protected
 * DACL), or refuse it when someone else owns it. An owner may always rewrite the DACL, so a file or
 * folder a user created first (a token file, the spool folder under ProgramData) would stay theirs
 * whatever DACL it is given. A descriptor without an owner is refused as well: nobody can vouch for it.
 */
export function lockDecision(sddl: string, self: string | undefined): LockDecision {
  const owner = ownerOf(sddl);
  if (owner === undefined) return { action: 'refuse', owner: 'no owner' };
  return trustedOwner(owner, self) ? { action: 'lock' } : { action: 'refuse', owner };
}

/**
 * A folder nobody but SYSTEM, Administrators (and the account itself) can change, judged from its
 * SDDL: a trusted owner and no one else allowed to write, create or delete in it. Only there does
 * the agent delete what it left behind.
 */
export function privateFolder(sddl: string, self: string | undefined): boolean {
  const owner = ownerOf(sddl);
  return (
    owner !== undefined &&
    trustedOwner(owner, self) &&
    untrustedWriters(sddl).filter((sid) => !isSelf(sid, self)).length === 0
  );
}

export type AncestorDecision = { action: 'ok' } | { action: 'refuse'; owner?: string; holders?: string[] };

/**
 * Whether a folder above one the agent locks (say C:\ProgramData\rasmon above its spool) keeps
 * that one where it is: owned by a trusted account, and nobody else may rename or delete what it
 * holds, nor the folder itself (DELETE is not asked of a volume's root, which cannot be renamed).
 * Otherwise a user could move the locked folder away and put their own in its place, and the
 * service, as SYSTEM, would load koffi's module from it.
 */
export function ancestorDecision(sddl: string, self: string | undefined, root = false): AncestorDecision {
  const owner = ownerOf(sddl);
  if (owner === undefined || !trustedOwner(owner, self)) return { action: 'refuse', owner: owner ?? 'no owner' };
  // The installing account itself (an administrator) may hold any right.
  const holders = untrustedHolders(sddl, root ? REPLACE & ~0x10000 : REPLACE).filter((sid) => !isSelf(sid, self));
  return holders.length === 0 ? { action: 'ok' } : { action: 'refuse', holders };
}

/** The refusal for a folder above the agent's own that others could rearrange. */
export function unsafeAncestorMessage(path: string, below: string, decision: AncestorDecision): string {
  if (decision.action === 'ok') return '';
  const why = decision.owner
    ? `is owned by ${describeSid(decision.owner)}, not by SYSTEM or Administrators`
    : `lets ${(decision.holders ?? []).map(describeSid).join(', ')} rename or delete what it holds`;
  return (
    `${path} ${why}, so ${below} could be moved away and replaced however it is locked. ` +
    `Give the agent a folder under one only administrators control (spool.dir, for example under C:\\ProgramData), ` +
    `or delete ${path} as an administrator if someone else created it, then run this again`
  );
}

/**
 * The refusal for an entry owned by someone else: the path, the owner (SID and, when known, the
 * account name), and what to do.
 */
export function foreignOwnerMessage(path: string, owner: string, account?: string): string {
  const who = account ? `${account} (${owner})` : describeSid(owner);
  return (
    `${path} is owned by ${who}, not by SYSTEM or Administrators: someone else created it first and could ` +
    `undo any lock set on it. Delete it as an administrator (check what it holds first), then run this again`
  );
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
  'S-1-1-0': 'Everyone (S-1-1-0)',
  'S-1-5-11': 'Authenticated Users (S-1-5-11)',
  'S-1-5-32-545': 'Users (S-1-5-32-545)',
  'S-1-5-4': 'Interactive (S-1-5-4)',
  'S-1-5-7': 'Anonymous (S-1-5-7)',
  NS: 'Network Service (S-1-5-20)',
  LS: 'Local Service (S-1-5-19)',
};

/** A SID for a message: the well-known name in English with the SID itself, or the SID. */
export function describeSid(sid: string): string {
  return WELL_KNOWN[sid] ?? sid;
}
