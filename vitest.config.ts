import { defineConfig } from 'vitest/config';

// Integration tests start real registries, mount overlayfs and run runc: they are slow and
// share kernel state (mount table), so files run in separate forked processes, two at a time
// (this machine has 2 cores).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default', ['json', { outputFile: '.vitest-report.json' }]],
  },
});
