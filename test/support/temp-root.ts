/**
 * vitest's global setup: every temporary file and folder of the run (the tests' own, and those of
 * the processes they start: configs, spools, Redis and Prometheus data, wine prefixes, Chromium
 * profiles) goes under one folder, set as TMPDIR, which is removed when the run ends. The test
 * workers are forked after this runs, so the variable reaches them and everything they start.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): (() => void) | undefined {
  // Each vitest project runs the global setup; the first one makes the folder and removes it.
  if (process.env.RASMON_TEST_TMPDIR_SET) return undefined;
  const before = process.env.TMPDIR;
  const root = mkdtempSync(join(tmpdir(), 'rasmon-test-'));
  process.env.TMPDIR = root;
  process.env.RASMON_TEST_TMPDIR_SET = root;
  return () => {
    rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    delete process.env.RASMON_TEST_TMPDIR_SET;
  };
}
