#!/usr/bin/env node
// Runs the tests at the wall clocks where calendars turn, each run on a shifted clock from its first
// second (RASMON_TEST_CLOCK, test/support/test-clock.ts): what passes today must pass on every day.
//
//   node scripts/test-at-clocks.mjs                       # every clock, the whole vitest suite
//   node scripts/test-at-clocks.mjs --clock 2028-02-29T12:00:00Z -- test/reports.test.ts
//
// Arguments after `--` go to `vitest run`. Without them, a clock's failed files (up to three) are
// run once more at that clock; exits 1 when they fail again, naming the clocks that failed, and
// names at the end what passed only when run again.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPORTER = fileURLToPath(new URL('failures-reporter.mjs', import.meta.url));

/** The first of a month just after midnight, the 15th, a month's last seconds, a leap day, a year's last seconds. */
export const CLOCKS = [
  '2027-03-01T00:00:05Z',
  '2027-07-15T12:00:00Z',
  '2027-04-30T23:59:50Z',
  '2028-02-29T12:00:00Z',
  '2031-12-31T23:59:50Z',
];

const args = process.argv.slice(2);
const dash = args.indexOf('--');
const own = dash === -1 ? args : args.slice(0, dash);
const vitestArgs = dash === -1 ? [] : args.slice(dash + 1);
const clocks = [];
for (let i = 0; i < own.length; i += 1) {
  if (own[i] === '--clock' && own[i + 1]) clocks.push(own[(i += 1)]);
  else {
    console.error(`test-at-clocks: unknown argument ${JSON.stringify(own[i])} (use --clock TIME and -- VITEST ARGS)`);
    process.exit(2);
  }
}

/**
 * What failed in one run (scripts/failures-reporter.mjs): each clock's run prints hundreds of lines, so
 * the last lines of a long log name what failed at every clock, not only at the last one.
 */
function failures(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return {
      lines: ['(vitest wrote no list of failures: it failed before running the tests)'],
      files: [],
      unhandled: 0,
      complete: false,
    };
  }
}

/** `vitest run` at `clock`; what failed, or undefined when it passed. */
function runAt(clock, args, failuresFile) {
  const run = spawnSync('npx', ['vitest', 'run', '--reporter=default', `--reporter=${REPORTER}`, ...args], {
    stdio: 'inherit',
    env: { ...process.env, RASMON_TEST_CLOCK: clock, RASMON_FAILURES_FILE: failuresFile },
  });
  return run.status === 0 ? undefined : failures(failuresFile);
}

/**
 * A clock's failed files are run once more at the same clock, so the date they meet is the same: a
 * failure that comes from the date comes back, one that came from the machine's load (a suite of
 * processes on two cores, wine among them) may not. What passed on its second run is still named
 * at the end of the log; what failed twice fails the run. Only a whole run that ended of itself is
 * given its second chance: one given arguments (a file, `-t`, `--project`) is not, as its files run
 * again would not be run as the arguments said.
 */
const MAX_FILES_AGAIN = 3;

const reports = mkdtempSync(join(tmpdir(), 'rasmon-clocks-'));
const failed = [];
const passedAgain = [];
for (const [i, clock] of (clocks.length ? clocks : CLOCKS).entries()) {
  console.log(`\n=== tests at ${clock} ===`);
  const first = runAt(clock, vitestArgs, join(reports, `${i}.json`));
  if (!first) continue;
  const again =
    vitestArgs.length === 0 &&
    first.complete &&
    !first.unhandled &&
    first.files.length > 0 &&
    first.files.length <= MAX_FILES_AGAIN;
  if (!again) {
    failed.push({ clock, lines: first.lines });
    continue;
  }
  console.log(`\n=== tests at ${clock}, the failed files again: ${first.files.join(' ')} ===`);
  const second = runAt(clock, first.files, join(reports, `${i}-again.json`));
  if (second) failed.push({ clock, lines: [...first.lines, '(run again:)', ...second.lines] });
  else passedAgain.push({ clock, lines: first.lines });
}
rmSync(reports, { recursive: true, force: true });
for (const { clock, lines } of passedAgain) {
  console.error(`\nfailed at ${clock}, then passed when run again at that clock:`);
  for (const line of lines) console.error(`  ${line}`);
}
if (failed.length) {
  for (const { clock, lines } of failed) {
    console.error(`\nfailed at ${clock}:`);
    if (lines.length === 0) console.error('  (vitest named no failed test or hook: see its output above)');
    for (const line of lines) console.error(`  ${line}`);
  }
  console.error(`\ntests failed at ${failed.map((f) => f.clock).join(', ')}`);
  process.exit(1);
}
console.log('\ntests passed at every clock');
