#!/usr/bin/env node
// Runs the tests at the wall clocks where calendars turn, each run on a shifted clock from its first
// second (RASMON_TEST_CLOCK, test/support/test-clock.ts): what passes today must pass on every day.
//
//   node scripts/test-at-clocks.mjs                       # every clock, the whole vitest suite
//   node scripts/test-at-clocks.mjs --clock 2028-02-29T12:00:00Z -- test/reports.test.ts
//
// Arguments after `--` go to `vitest run`. Exits 1 when a run fails, naming the clocks that failed.
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
    return ['(vitest wrote no list of failures: it failed before running the tests)'];
  }
}

const reports = mkdtempSync(join(tmpdir(), 'rasmon-clocks-'));
const failed = [];
for (const [i, clock] of (clocks.length ? clocks : CLOCKS).entries()) {
  console.log(`\n=== tests at ${clock} ===`);
  const failuresFile = join(reports, `${i}.json`);
  const run = spawnSync('npx', ['vitest', 'run', '--reporter=default', `--reporter=${REPORTER}`, ...vitestArgs], {
    stdio: 'inherit',
    env: { ...process.env, RASMON_TEST_CLOCK: clock, RASMON_FAILURES_FILE: failuresFile },
  });
  if (run.status !== 0) failed.push({ clock, tests: failures(failuresFile) });
}
rmSync(reports, { recursive: true, force: true });
if (failed.length) {
  for (const { clock, tests } of failed) {
    console.error(`\nfailed at ${clock}:`);
    for (const line of tests) console.error(`  ${line}`);
  }
  console.error(`\ntests failed at ${failed.map((f) => f.clock).join(', ')}`);
  process.exit(1);
}
console.log('\ntests passed at every clock');
