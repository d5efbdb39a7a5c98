import { defineConfig } from 'vitest/config';

/**
 * Every package's vitest config starts here. The JSON report lets .ci/run sum passed/failed
 * across packages and backends without scraping terminal output.
 */
export function vitestPreset(overrides = {}) {
  return defineConfig({
    test: {
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      environment: 'node',
      testTimeout: 20_000,
      hookTimeout: 30_000,
      reporters: ['default', 'json'],
      outputFile: { json: './.test-results/vitest.json' },
      ...overrides,
    },
  });
}
