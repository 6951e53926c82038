/**
 * vitest's global setup: with `RASMON_TEST_CLOCK=2027-12-31T23:59:50Z` every test file runs on a wall
 * clock that reads that instant when the run starts and goes on from there, and so does every process a
 * test starts (redis-server, the collector, Chromium, wine) except Go programs (Prometheus, promtool,
 * Alertmanager), which read the kernel's clock without libc. `npm run test:clocks` runs the suite at the
 * clocks where calendars turn (scripts/test-at-clocks.mjs).
 *
 * The test workers are forked after this runs, so the variables set here reach them.
 */
import { CLOCK_OFFSET_VARIABLE, shiftedClockEnv } from './fake-clock.js';

export default function setup(): void {
  const text = process.env.RASMON_TEST_CLOCK;
  // Each vitest project runs the global setup; the first one sets the clock for all.
  if (!text || process.env.RASMON_TEST_CLOCK_SET === text) return;
  const at = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(text) || Number.isNaN(at)) {
    throw new Error(`RASMON_TEST_CLOCK must be a UTC time like 2027-12-31T23:59:50Z, got ${JSON.stringify(text)}`);
  }
  const env = shiftedClockEnv(at);
  process.env.LD_PRELOAD = env.LD_PRELOAD;
  process.env[CLOCK_OFFSET_VARIABLE] = env[CLOCK_OFFSET_VARIABLE];
  process.env.RASMON_TEST_CLOCK_SET = text;
  console.log(`test clock: ${text} (the machine's clock + ${env[CLOCK_OFFSET_VARIABLE]} ms)`);
}
