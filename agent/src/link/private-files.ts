/**
 * The spool folder holds user names, client addresses and the session list of the host: on Linux
 * and other Unixes it is the agent's alone, the folder 0700 and every file in it 0600, whatever the
 * umask. On Windows the modes mean nothing; `service install` locks the folder by its ACL instead.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { chmod, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { RasmonError, writeFileAtomic } from '@rasmon/protocol/kit';
import type { Logger } from 'pino';

export const PRIVATE_DIRECTORY_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

const UNIX = process.platform !== 'win32';

/** The spool folder cannot be made the agent's own (one every user may write to, such as /tmp). */
export class SpoolDirectoryError extends RasmonError {
  constructor(message: string) {
    super('RASMON_SPOOL_DIRECTORY', message);
    this.name = 'SpoolDirectoryError';
  }
}

/**
 * Creates `dir` 0700 (its missing parents too), or brings an existing one there: a folder this
 * account owns loses its group and other permissions, and so do the files in it (an earlier
 * version wrote them 0644). A folder every user may write to is refused: it is shared (/tmp), and
 * narrowing it would break everything else that uses it. Says what it changed in `log`.
 */
export function preparePrivateDirectory(dir: string, log: Logger): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
  if (!UNIX) return;
  const self = process.getuid?.();
  const stats = statSync(dir);
  if ((stats.mode & 0o002) !== 0) {
    throw new SpoolDirectoryError(
      `spool folder ${dir} is writable by every user (mode ${octal(stats.mode)}): give the agent a folder of its own (spool.dir)`,
    );
  }
  if ((stats.mode & 0o077) !== 0) {
    if (stats.uid !== self) {
      log.warn(
        { dir, mode: octal(stats.mode) },
        'spool folder is open to other users and belongs to another account: the agent cannot narrow it',
      );
    } else {
      chmodSync(dir, PRIVATE_DIRECTORY_MODE);
      log.warn({ dir, was: octal(stats.mode) }, 'spool folder was open to other users: now 0700');
    }
  }
  let narrowed = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    // lstat: a link is not followed to whatever it points at.
    const entry = lstatSync(path);
    if (!entry.isFile() || entry.uid !== self || (entry.mode & 0o077) === 0) continue;
    chmodSync(path, PRIVATE_FILE_MODE);
    narrowed += 1;
  }
  if (narrowed > 0) log.warn({ dir, files: narrowed }, 'spool files were readable by other users: now 0600');
}

/** Opens a file of the spool folder, created 0600 (`a` to append, `w` to overwrite in place). */
export function openPrivateFile(path: string, flags: 'a' | 'w'): Promise<FileHandle> {
  return open(path, flags, PRIVATE_FILE_MODE);
}

/**
 * Replaces a file of the spool folder atomically (protocol's writeFileAtomic), then makes it 0600.
 * Between the rename and the chmod the new file has the umask's mode; the folder is 0700, so nobody
 * else can reach it meanwhile.
 */
export async function writePrivateFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await writeFileAtomic(path, data);
  if (UNIX) await chmod(path, PRIVATE_FILE_MODE);
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}
