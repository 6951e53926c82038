#!/usr/bin/env node
// Runs the tests at the wall clocks where calendars turn, each run on a shifted clock from its first
// second (RASMON_TEST_CLOCK, test/support/test-clock.ts): what passes today must pass on every day.
//
//   node scripts/test-at-clocks.mjs                       # every clock, the whole vitest suite
//   node scripts/test-at-clocks.mjs --clock 2028-02-29T12:00:00Z -- test/reports.test.ts
//
// Arguments after `--` go to `vitest run`. Exits 1 when a run fails, naming the clocks that failed.
import { spawnSync } from 'node:child_process';

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

const failed = [];
for (const clock of clocks.length ? clocks : CLOCKS) {
  console.log(`\n=== tests at ${clock} ===`);
  const run = spawnSync('npx', ['vitest', 'run', ...vitestArgs], {
    stdio: 'inherit',
    env: { ...process.env, RASMON_TEST_CLOCK: clock },
  });
  if (run.status !== 0) failed.push(clock);
}
if (failed.length) {
  console.error(`\ntests failed at ${failed.join(', ')}`);
  process.exit(1);
}
console.log('\ntests passed at every clock');
