import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Driver code imports the host interface the component model provides; in-process
    // unit tests (driver-sdk/testing) get a fake instead.
    // Any world version: the SDK imports the one it is built against.
    alias: [{ find: /^virtkit:driver\/host@\d+\.\d+\.\d+$/, replacement: new URL('./packages/driver-sdk/test/host-shim.ts', import.meta.url).pathname }],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    // The `virtkit` commands the tests run use their own nodes, never a virtkitd that may be
    // running on this machine (a test that wants the daemon path says so).
    env: { VIRTKIT_EMBEDDED: '1' },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests spawn workers and processes; two cores here.
    pool: 'forks',
    maxWorkers: 2,
  },
});
