import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Driver code imports the host interface the component model provides; in-process
    // unit tests (driver-sdk/testing) get a fake instead.
    alias: { 'virtkit:driver/host@0.2.0': new URL('./packages/driver-sdk/test/host-shim.ts', import.meta.url).pathname },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests spawn workers and processes; two cores here.
    pool: 'forks',
    maxWorkers: 2,
  },
});
