/**
 * Loads koffi, the FFI the `wts` source calls the WTS API through. In `rasmon-agent.exe` koffi's
 * win32-x64 native module travels inside the exe as the SEA asset `koffi.node`: Windows loads DLLs
 * from files only, so it is written to a fresh private directory under the temp folder and opened
 * with `process.dlopen`. The module alone is koffi's whole API (its JS package only finds and wraps
 * it). Outside the exe (a Node install with the npm package) koffi comes from node_modules.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as sea from 'node:sea';
import type * as Koffi from 'koffi';
import { RasmonError } from '@rasmon/protocol/kit';

export type KoffiModule = typeof Koffi;

/** The SEA asset's name; the exe build embeds koffi's win32-x64 `koffi.node` under it. */
export const KOFFI_ASSET = 'koffi.node';
const TEMP_PREFIX = 'rasmon-agent-koffi-';

/** koffi could not be loaded: the `wts` source cannot run on this machine. */
export class KoffiLoadError extends RasmonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RASMON_KOFFI_LOAD', message, options);
    this.name = 'KoffiLoadError';
  }
}

let loaded: KoffiModule | undefined;

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
  removeStaleCopies();
  // A directory of our own with a random name: nothing can be planted there before we write.
  const dir = mkdtempSync(join(tmpdir(), TEMP_PREFIX));
  const file = join(dir, KOFFI_ASSET);
  writeFileSync(file, bytes, { flag: 'wx', mode: 0o600 });
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
 * Earlier runs' copies: Windows keeps a loaded DLL's file locked, so each run leaves its copy
 * behind; the next start removes those no process holds any more (the rest fail and stay).
 */
function removeStaleCopies(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    try {
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    } catch {
      // Still loaded by a running agent.
    }
  }
}

function loadFromPackage(): KoffiModule {
  try {
    return createRequire(import.meta.url)('koffi') as KoffiModule;
  } catch (err) {
    throw new KoffiLoadError(`the koffi package is not installed: ${(err as Error).message}`, { cause: err });
  }
}
