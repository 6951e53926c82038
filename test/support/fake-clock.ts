/**
 * Runs processes on a shifted wall clock (test/support/fake-clock.c, built here with the machine's gcc),
 * so a test can start redis-server and the collector at 31 December 23:59:40 UTC and watch midnight pass.
 * Redis's `TIME` is the license rules' clock (docs/design.md §2 rule 11), so it is redis-server that
 * must run shifted; the collector runs shifted too, so its own dates (report periods, the status page's
 * "today") agree with Redis's.
 *
 * The shift is an offset from the machine's clock: shifted processes started at different moments share
 * one clock, which runs at the machine's pace. `RASMON_TEST_CLOCK` runs a whole suite this way
 * (test/support/test-clock.ts); a test that is itself shifted still starts children at the clock it
 * asks for, measured from the machine's clock.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLOCK_OFFSET_VARIABLE = 'RASMON_CLOCK_OFFSET_MS';

const SOURCE = fileURLToPath(new URL('fake-clock.c', import.meta.url));

/** The shim's path, built once per source text (in the machine's temp folder). */
export function fakeClockLibrary(): string {
  const source = readFileSync(SOURCE);
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), 'rasmon-fake-clock');
  const library = join(dir, `fake-clock-${hash}.so`);
  if (existsSync(library)) return library;
  mkdirSync(dir, { recursive: true });
  const building = `${library}.${process.pid}.tmp`;
  try {
    execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-x', 'c', '-', '-o', building], {
      input: source,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
  } catch (err) {
    throw new Error(`cannot build the shifted clock (test/support/fake-clock.c) with gcc: ${(err as Error).message}`);
  }
  renameSync(building, library);
  return library;
}

/** How far this process's own wall clock runs ahead of the machine's (0 unless it is shifted itself). */
export function ownClockOffsetMs(): number {
  return Number(process.env[CLOCK_OFFSET_VARIABLE] ?? 0) || 0;
}

/** The machine's own wall clock, whatever this process's is. */
export function machineNow(): number {
  return Date.now() - ownClockOffsetMs();
}

/**
 * The environment for a child whose wall clock reads `atMs` now and runs on from there: `LD_PRELOAD` of
 * the shim (added to any library already preloaded) and the offset from the machine's clock.
 */
export function shiftedClockEnv(atMs: number, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const library = fakeClockLibrary();
  const preload = (env.LD_PRELOAD ?? '').split(/[: ]/).filter((entry) => entry && !entry.includes('rasmon-fake-clock'));
  return {
    ...env,
    LD_PRELOAD: [library, ...preload].join(':'),
    [CLOCK_OFFSET_VARIABLE]: String(Math.round(atMs - machineNow())),
  };
}

/** One shifted clock shared by every process started with its {@link ShiftedClock.env}. */
export class ShiftedClock {
  private readonly offsetMs: number;

  /** A clock that reads `atMs` now. */
  constructor(atMs: number) {
    this.offsetMs = atMs - machineNow();
  }

  /** What the shifted clock reads now. */
  now(): number {
    return machineNow() + this.offsetMs;
  }

  /** The environment for a process on this clock. */
  env(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
    return shiftedClockEnv(this.now(), env);
  }
}
