import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['protocol/test/**/*.test.ts', 'collector/test/**/*.test.ts', 'agent/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Suites start their own redis-server and collectors; two at a time suits a 2-core machine.
    maxWorkers: 2,
  },
});
