/**
 * The agent's host key (docs/design.md §6, "Host binding"): 32 random bytes, base64url, made at the
 * agent's first start in the file `host-key` of its spool directory (the folder `service install`
 * locks) and sent in every hello. The collector binds the host to the first key it sees for it;
 * from then on only this key speaks for the host. The key is never logged.
 *
 * Created readable by its owner only: mode 0600 on Linux; on Windows the caller's `secure` (the
 * same lock as the token file's) runs on the new file before the key is written into it.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { HOST_KEY_PATTERN } from '@rasmon/protocol';
import { preparePrivateDirectory } from './private-files.js';
import type { Logger } from 'pino';

export const HOST_KEY_FILE = 'host-key';

/** The host key file is there but holds no key: the agent will not make another on its own. */
export class HostKeyError extends Error {
  readonly code = 'HOST_KEY_INVALID';
}

export interface HostKeyOptions {
  log: Logger;
  /** Locks a new file before the key goes into it (Windows: SYSTEM and Administrators only). */
  secure?: (path: string) => void;
}

/** The host key file of a spool directory. */
export function hostKeyPath(dir: string): string {
  return join(dir, HOST_KEY_FILE);
}

/** The key kept in `dir`, or undefined when there is none yet; throws when the file holds no key. */
export function readHostKey(dir: string): string | undefined {
  const path = hostKeyPath(dir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const key = text.trim();
  if (!HOST_KEY_PATTERN.test(key)) {
    // A new key would be refused anyway: the collector knows the host by the old one.
    throw new HostKeyError(
      `host key file ${path} does not hold a host key: restore it from a backup, or delete it and run rasmon-collector rebind-host for this host`,
    );
  }
  return key;
}

/** The agent's host key: the one kept in `dir`, or a new one made and kept there now. */
export function loadHostKey(dir: string, options: HostKeyOptions): string {
  const existing = readHostKey(dir);
  const path = hostKeyPath(dir);
  if (existing !== undefined) {
    if (process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0) {
      chmodSync(path, 0o600);
      options.log.warn({ path }, 'host key file was readable by others: now readable by its owner only');
    }
    return existing;
  }
  // The spool folder's own checks first: 0700 off Windows, and a folder every user may write to refused.
  preparePrivateDirectory(dir, options.log);
  const key = randomBytes(32).toString('base64url');
  // Written aside and renamed into place, so a crash never leaves a half-written key.
  const tmp = `${path}.tmp`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    options.secure?.(tmp);
    writeSync(fd, `${key}\n`);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  options.log.info({ path }, 'made a host key for this host: the collector binds the host to it at the next hello');
  return key;
}
