/**
 * Locks the agent's files to SYSTEM and Administrators by SID: owner Administrators and a protected
 * DACL, both set from SDDL in one SetNamedSecurityInfoW. An entry someone else owns is refused
 * before anything is set. Reads back who can read a file. Windows only; the decisions are in dacl.ts.
 */
import { win32 } from 'node:path';
import { RasmonError } from '@rasmon/protocol/kit';
import {
  advapi32,
  DACL_SECURITY_INFORMATION,
  ERROR_SUCCESS,
  OWNER_SECURITY_INFORMATION,
  PROTECTED_DACL_SECURITY_INFORMATION,
  SDDL_REVISION_1,
  SE_FILE_OBJECT,
  TOKEN_QUERY,
  TOKEN_USER_CLASS,
  Win32Error,
  type Handle,
} from './advapi32.js';
import {
  ancestorDecision,
  describeSid,
  DIRECTORY_SDDL,
  FILE_SDDL,
  foreignOwnerMessage,
  lockDecision,
  privateFolder,
  unsafeAncestorMessage,
} from './dacl.js';
import { sidToString } from './wts-decode.js';

/** A file or folder the agent was to lock belongs to someone else: refused, nothing changed. */
export class ForeignOwnerError extends RasmonError {
  constructor(
    readonly path: string,
    readonly owner: string,
    account: string | undefined,
  ) {
    super('RASMON_FOREIGN_OWNER', foreignOwnerMessage(path, owner, account));
    this.name = 'ForeignOwnerError';
  }
}

/** Replaces the owner and DACL of `path` with those of `sddl`, not inheriting from its parent. */
export function setSecurity(path: string, sddl: string): void {
  const api = advapi32();
  const descriptor: Handle[] = [null];
  if (!api.ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, descriptor, [0])) {
    throw new Win32Error('ConvertStringSecurityDescriptorToSecurityDescriptorW', api.GetLastError());
  }
  try {
    const owner: Handle[] = [null];
    if (!api.GetSecurityDescriptorOwner(descriptor[0]!, owner, [0])) {
      throw new Win32Error('GetSecurityDescriptorOwner', api.GetLastError());
    }
    const dacl: Handle[] = [null];
    if (!api.GetSecurityDescriptorDacl(descriptor[0]!, [0], dacl, [0])) {
      throw new Win32Error('GetSecurityDescriptorDacl', api.GetLastError());
    }
    const status = api.SetNamedSecurityInfoW(
      path,
      SE_FILE_OBJECT,
      OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
      owner[0]!,
      null,
      dacl[0]!,
      null,
    );
    if (status !== ERROR_SUCCESS) throw new Win32Error(`SetNamedSecurityInfoW(${path})`, status);
  } finally {
    api.LocalFree(descriptor[0]!);
  }
}

/** The owner and DACL of `path` as SDDL (`O:BAD:P(A;;FA;;;SY)…`). */
export function getSecurity(path: string): string {
  const api = advapi32();
  const information = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;
  const descriptor: Handle[] = [null];
  const status = api.GetNamedSecurityInfoW(path, SE_FILE_OBJECT, information, null, null, null, null, descriptor);
  if (status !== ERROR_SUCCESS) throw new Win32Error(`GetNamedSecurityInfoW(${path})`, status);
  try {
    const text: Handle[] = [null];
    if (
      !api.ConvertSecurityDescriptorToStringSecurityDescriptorW(descriptor[0]!, SDDL_REVISION_1, information, text, [0])
    ) {
      throw new Win32Error('ConvertSecurityDescriptorToStringSecurityDescriptorW', api.GetLastError());
    }
    try {
      return api.k.decode.string16(text[0]!);
    } finally {
      api.LocalFree(text[0]!);
    }
  } finally {
    api.LocalFree(descriptor[0]!);
  }
}

/** The DACL of `path` as SDDL (with its owner before it). */
export function getDacl(path: string): string {
  return getSecurity(path);
}

let self: string | undefined;

/** The SID of the account this process runs as (SYSTEM for the service and the MSI's steps). */
export function processUserSid(): string {
  if (self !== undefined) return self;
  const api = advapi32();
  const token: Handle[] = [null];
  if (!api.OpenProcessToken(api.GetCurrentProcess(), TOKEN_QUERY, token)) {
    throw new Win32Error('OpenProcessToken', api.GetLastError());
  }
  try {
    const buffer = Buffer.alloc(256);
    if (!api.GetTokenInformation(token[0]!, TOKEN_USER_CLASS, buffer, buffer.length, [0])) {
      throw new Win32Error('GetTokenInformation(TokenUser)', api.GetLastError());
    }
    // TOKEN_USER begins with the SID's address, which points into the same buffer.
    const offset = Number(buffer.readBigUInt64LE(0) - BigInt(api.k.address(buffer)));
    self = sidToString(buffer, offset);
    return self;
  } finally {
    api.CloseHandle(token[0]!);
  }
}

/** `DOMAIN\name` of a SID, or undefined when it does not resolve (a deleted account, no domain controller). */
export function accountName(sid: string): string | undefined {
  const api = advapi32();
  const binary: Handle[] = [null];
  if (!api.ConvertStringSidToSidW(sid, binary)) return undefined;
  try {
    const name = Buffer.alloc(512);
    const domain = Buffer.alloc(512);
    const nameLength = [name.length / 2];
    const domainLength = [domain.length / 2];
    if (!api.LookupAccountSidW(null, binary[0]!, name, nameLength, domain, domainLength, [0])) return undefined;
    const text = (buffer: Buffer, length: number) => buffer.toString('utf16le', 0, length * 2);
    const user = text(name, nameLength[0]!);
    const where = text(domain, domainLength[0]!);
    return where ? `${where}\\${user}` : user;
  } finally {
    api.LocalFree(binary[0]!);
  }
}

/**
 * Gives `path` owner Administrators and the protected DACL of `sddl`, unless someone other than
 * SYSTEM, Administrators, TrustedInstaller or this very account owns it: then throws
 * ForeignOwnerError and changes nothing.
 */
function lock(path: string, sddl: string): void {
  const decision = lockDecision(getSecurity(path), processUserSid());
  if (decision.action === 'refuse') {
    // Well-known SIDs have their English name already; others are looked up (DOMAIN\user).
    const account = describeSid(decision.owner) === decision.owner ? accountName(decision.owner) : undefined;
    throw new ForeignOwnerError(path, decision.owner, account);
  }
  setSecurity(path, sddl);
}

/** SYSTEM and Administrators only, for a file (the token, a log file). */
export function lockFile(path: string): void {
  lock(path, FILE_SDDL);
}

/** SYSTEM and Administrators only, for a directory and everything in it now and later. */
export function lockDirectory(path: string): void {
  lock(path, DIRECTORY_SDDL);
}

/** A folder above one of the agent's lets someone else move it away and put another in its place. */
export class UnsafeAncestorError extends RasmonError {
  constructor(message: string) {
    super('RASMON_UNSAFE_ANCESTOR', message);
    this.name = 'UnsafeAncestorError';
  }
}

/**
 * Checks every folder above `path` up to its volume's root (ancestorDecision); throws
 * UnsafeAncestorError for the first that would let someone else replace `path`.
 */
export function checkAncestors(path: string): void {
  const self = processUserSid();
  let below = path;
  for (let dir = win32.dirname(path); ; dir = win32.dirname(dir)) {
    const root = win32.dirname(dir) === dir;
    const decision = ancestorDecision(getSecurity(dir), self, root);
    if (decision.action === 'refuse') throw new UnsafeAncestorError(unsafeAncestorMessage(dir, below, decision));
    if (root) return;
    below = dir;
  }
}

/** Whether only SYSTEM and Administrators (and this account) can change `path` or create in it. */
export function isPrivateFolder(path: string): boolean {
  return privateFolder(getSecurity(path), processUserSid());
}
