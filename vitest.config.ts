import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The tests under test/ that need no external binary. The rest of test/ starts redis-server, promtool,
 * Prometheus, Alertmanager, amtool, docker-compose, wine or Chromium; the packages' own tests
 * (protocol/test, collector/test, agent/test) need none of them.
 */
const UNIT_IN_TEST = [
  'test/dashboard.test.ts',
  'test/prometheus-rule-files.test.ts',
  'test/compose-files.test.ts',
  'test/demo-cli.test.ts',
  'test/demo-self-signed.test.ts',
  'test/design-citations.test.ts',
  'test/dockerfile.test.ts',
  'test/setup-script.test.ts',
  'test/metrics-table.test.ts',
  'test/docs.test.ts',
  'test/status-words.test.ts',
];

export default defineConfig({
  test: {
    // RASMON_TEST_CLOCK runs everything on a shifted wall clock (npm run test:clocks).
    // One temporary folder for the run, removed at its end (test/support/temp-root.ts).
    globalSetup: ['test/support/temp-root.ts', 'test/support/test-clock.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // expect.poll waits for what a real process does on a loaded machine (CI runs two suites at
    // once, each with its collectors, agents and redis-server): 1 s, vitest's default, is too short.
    expect: { poll: { timeout: 15_000 } },
    // Suites start their own redis-server and collectors; two at a time suits a 2-core machine.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: [
            'protocol/test/**/*.test.ts',
            'collector/test/**/*.test.ts',
            'agent/test/**/*.test.ts',
            ...UNIT_IN_TEST,
          ],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...UNIT_IN_TEST],
        },
      },
    ],
  },
});
