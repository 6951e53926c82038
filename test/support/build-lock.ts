/**
 * One build at a time across test files (vitest runs them in parallel processes): a lock folder that
 * holds its holder's pid. A lock whose holder has exited was left by a killed run and is taken over;
 * staleness is judged by the holder, never by the lock's age, since the tests may run on a shifted
 * clock (RASMON_TEST_CLOCK) under which every file looks years old or not yet made.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

function holderAlive(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
  } catch (err) {
    // No pid: the lock is gone meanwhile, or was left by an older kind of lock. Either way it is free.
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `use` holding `lock` (a folder path), waiting up to `waitMs` for another holder. */
export async function withBuildLock<T>(
  lock: string,
  what: string,
  use: () => T | Promise<T>,
  waitMs = 15 * 60_000,
): Promise<T> {
  mkdirSync(dirname(lock), { recursive: true });
  const deadline = performance.now() + waitMs;
  for (;;) {
    // The pid is in place before the lock exists: renaming a full folder onto the lock is atomic.
    const staging = `${lock}.${process.pid}.${randomBytes(4).toString('hex')}`;
    mkdirSync(staging);
    writeFileSync(join(staging, 'pid'), String(process.pid));
    try {
      renameSync(staging, lock);
      break;
    } catch {
      rmSync(staging, { recursive: true, force: true });
      if (!holderAlive(lock)) rmSync(lock, { recursive: true, force: true });
    }
    if (performance.now() > deadline) throw new Error(`timed out waiting for another build of ${what}`);
    await sleep(500);
  }
  try {
    return await use();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
