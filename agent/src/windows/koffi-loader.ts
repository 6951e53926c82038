/**
 * Loads koffi, the FFI the `wts` source and the service call Windows through. In `rasmon-agent.exe`
 * koffi's win32-x64 native module travels inside the exe as the SEA asset `koffi.node`: Windows
 * loads DLLs from files only, so it is written to a file of its own and opened with
 * `process.dlopen`. The module alone is koffi's whole API (its JS package only finds and wraps it).
 * Outside the exe (a Node install with the npm package) koffi comes from node_modules.
 *
 * Where the file goes, and why nothing is ever deleted recursively or where users can write:
 * - The service (`service run`, as SYSTEM) writes it to the runtime folder, `runtime` beside the
 *   spool folder, which `service install` and the MSI locked (owner Administrators, SYSTEM and
 *   Administrators only, and no folder above it others could rearrange). Earlier runs' copies are
 *   removed from there only (`removeStaleKoffiCopies`), one named file at a time.
 * - Every other command (`service install`, the MSI's `service setup`, `check`, `sessions`) runs
 *   before that folder is locked, or without knowing it is: it would be loading a DLL from a folder
 *   someone else may control. It writes to a new folder of a random name under the temp folder
 *   (mkdtemp: nobody can plant anything there beforehand, nor change a file it created) and
 *   removes nothing there: as SYSTEM (the MSI's step) %TEMP% is C:\Windows\Temp, where any user can create
 *   folders, and a recursive delete there as SYSTEM follows a junction swapped in mid-delete. Each
 *   such run leaves 1 MiB behind, for the system's temp cleanup.
 */
import { randomBytes, createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as sea from 'node:sea';
import type * as Koffi from 'koffi';
import { RasmonError } from '@rasmon/protocol/kit';

export type KoffiModule = typeof Koffi;

/** The SEA asset's name; the exe build embeds koffi's win32-x64 `koffi.node` under it. */
export const KOFFI_ASSET = 'koffi.node';
/** `koffi-<pid>-<random>.node`: a new name each run, so nothing can be planted under it beforehand. */
const COPY_NAME = /^koffi-\d+-[0-9a-f]{16}\.node$/;

/** koffi could not be loaded: the `wts` source cannot run on this machine. */
export class KoffiLoadError extends RasmonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RASMON_KOFFI_LOAD', message, options);
    this.name = 'KoffiLoadError';
  }
}

/** The runtime folder for a spool folder: `runtime` beside it, as `logs` is. */
export function koffiDirectory(spoolDir: string): string {
  return join(dirname(spoolDir), 'runtime');
}

let directory: string | undefined;
let loaded: KoffiModule | undefined;
/** The copy this process loaded, which stays locked while it runs. */
let ownCopy: string | undefined;

/**
 * The locked runtime folder the service writes koffi's module to; set by `service run` only, before
 * its first Windows call. Unset, a new folder under the temp folder is used.
 */
export function useKoffiDirectory(dir: string): void {
  directory = dir;
}

/** koffi, loaded once per process. */
export function loadKoffi(): KoffiModule {
  loaded ??= sea.isSea() ? loadFromAsset() : loadFromPackage();
  return loaded;
}

function loadFromAsset(): KoffiModule {
  let bytes: Buffer;
  try {
    bytes = Buffer.from(sea.getRawAsset(KOFFI_ASSET) as ArrayBuffer);
  } catch (err) {
    throw new KoffiLoadError(`this executable carries no ${KOFFI_ASSET} asset (built without it?)`, { cause: err });
  }
  let dir = directory;
  let file = '';
  try {
    if (dir === undefined) dir = mkdtempSync(join(tmpdir(), 'rasmon-agent-koffi-'));
    else mkdirSync(dir, { recursive: true });
    file = join(dir, `koffi-${process.pid}-${randomBytes(8).toString('hex')}.node`);
    // A name nobody could guess, created here ('wx' fails on anything already there).
    writeFileSync(file, bytes, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    throw new KoffiLoadError(`cannot write koffi's module to ${dir ?? tmpdir()}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  ownCopy = file;
  const module = { exports: {} as KoffiModule };
  try {
    process.dlopen(module, file);
  } catch (err) {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    throw new KoffiLoadError(`cannot load the embedded koffi module (sha256 ${sha256}): ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (typeof module.exports.load !== 'function') throw new KoffiLoadError('the embedded koffi module is not koffi');
  return module.exports;
}

/**
 * Removes earlier runs' copies from `dir` (Windows keeps a loaded DLL's file locked, so each run
 * leaves its copy behind): only regular files named as this module names them, one unlink each,
 * never a folder, a link or a junction, never recursively. A copy a running agent still holds
 * fails and stays. Call it only for a folder that only SYSTEM and Administrators can change.
 * Returns how many were removed.
 */
export function removeStaleKoffiCopies(dir: string): number {
  let removed = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    if (!entry.isFile() || !COPY_NAME.test(entry.name)) continue;
    const path = join(dir, entry.name);
    if (path === ownCopy) continue;
    try {
      unlinkSync(path);
      removed += 1;
    } catch {
      // Still loaded by a running agent.
    }
  }
  return removed;
}

function loadFromPackage(): KoffiModule {
  try {
    return createRequire(import.meta.url)('koffi') as KoffiModule;
  } catch (err) {
    throw new KoffiLoadError(`the koffi package is not installed: ${(err as Error).message}`, { cause: err });
  }
}
