/**
 * The agent's runtime folder (koffi-loader.ts): locked like the spool and logs folders, and only
 * once it is private are the copies of koffi's module earlier runs left there removed.
 */
import { mkdirSync } from 'node:fs';
import { isPrivateFolder, lockDirectory } from './file-lock.js';
import { removeStaleKoffiCopies } from './koffi-loader.js';

/**
 * Creates and locks `dir` (refused when someone else owns it), then removes earlier copies of koffi
 * when the folder turned out private; `removed` is undefined when it did not (a file system that
 * keeps no Windows ACLs), and nothing was deleted.
 */
export function lockRuntimeFolder(dir: string): { removed: number | undefined } {
  mkdirSync(dir, { recursive: true });
  lockDirectory(dir);
  return { removed: isPrivateFolder(dir) ? removeStaleKoffiCopies(dir) : undefined };
}
