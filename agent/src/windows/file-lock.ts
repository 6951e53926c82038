/**
 * Locks the agent's files to SYSTEM and Administrators by SID (a protected DACL set from SDDL), and
 * reads back who can read a file. Windows only; the decisions are in dacl.ts.
 */
import {
  advapi32,
  DACL_SECURITY_INFORMATION,
  ERROR_SUCCESS,
  PROTECTED_DACL_SECURITY_INFORMATION,
  SDDL_REVISION_1,
  SE_FILE_OBJECT,
  Win32Error,
  type Handle,
} from './advapi32.js';
import { DIRECTORY_SDDL, FILE_SDDL } from './dacl.js';

/** Replaces the DACL of `path` with `sddl`, not inheriting from its parent; directories pass theirs on. */
export function setDacl(path: string, sddl: string): void {
  const api = advapi32();
  const descriptor: Handle[] = [null];
  if (!api.ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, descriptor, [0])) {
    throw new Win32Error('ConvertStringSecurityDescriptorToSecurityDescriptorW', api.GetLastError());
  }
  try {
    const present = [0];
    const dacl: Handle[] = [null];
    if (!api.GetSecurityDescriptorDacl(descriptor[0]!, present, dacl, [0])) {
      throw new Win32Error('GetSecurityDescriptorDacl', api.GetLastError());
    }
    const status = api.SetNamedSecurityInfoW(
      path,
      SE_FILE_OBJECT,
      DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
      null,
      null,
      dacl[0]!,
      null,
    );
    if (status !== ERROR_SUCCESS) throw new Win32Error(`SetNamedSecurityInfoW(${path})`, status);
  } finally {
    api.LocalFree(descriptor[0]!);
  }
}

/** The DACL of `path` as SDDL. */
export function getDacl(path: string): string {
  const api = advapi32();
  const descriptor: Handle[] = [null];
  const status = api.GetNamedSecurityInfoW(
    path,
    SE_FILE_OBJECT,
    DACL_SECURITY_INFORMATION,
    null,
    null,
    null,
    null,
    descriptor,
  );
  if (status !== ERROR_SUCCESS) throw new Win32Error(`GetNamedSecurityInfoW(${path})`, status);
  try {
    const text: Handle[] = [null];
    if (
      !api.ConvertSecurityDescriptorToStringSecurityDescriptorW(
        descriptor[0]!,
        SDDL_REVISION_1,
        DACL_SECURITY_INFORMATION,
        text,
        [0],
      )
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

/** SYSTEM and Administrators only, for a file (the token, a log file). */
export function lockFile(path: string): void {
  setDacl(path, FILE_SDDL);
}

/** SYSTEM and Administrators only, for a directory and everything in it now and later. */
export function lockDirectory(path: string): void {
  setDacl(path, DIRECTORY_SDDL);
}
