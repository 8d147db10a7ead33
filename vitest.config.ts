import { defineConfig } from 'vitest/config';

// Unit tests (pure src/core) run fully parallel. Integration and CLI tests share
// one PostgreSQL and one Redis on a 2-core machine, so they run a few files at
// a time; each test makes its own uniquely named databases and key prefixes.
export default defineConfig({
  test: {
    // Two cores: at most two test files at once across both projects.
    maxWorkers: 2,
    minWorkers: 1,
    // The JSON report is what .ci/run counts ("N passed, N failed").
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-report.json' },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // Property tests run a few seconds alone; give them room on a busy 2-core CI machine.
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/cli/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
