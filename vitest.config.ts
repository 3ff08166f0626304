import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The workspace client from source, as tsconfig.json's paths give it to tsc and tsx.
  resolve: {
    alias: {
      '@claw-approvals/client': fileURLToPath(new URL('./packages/client/src/index.ts', import.meta.url)),
    },
  },
  test: {
    include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    // Removes DATABASE_URL: the suite's PostgreSQL is TEST_DATABASE_URL, never the operator's database.
    setupFiles: ['test/setup/env.ts'],
    // Bounds on failure only: tests wait on readiness and conditions, never on time, and a
    // machine at load 10 runs a test several times slower than an idle one.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two workers keep a 2-core machine responsive. Each worker runs file after file in one
    // process: a file's module imports, JIT warm-up and PGlite instances (reset between tests,
    // test/helpers/db.ts) serve the next file too, which takes the suite from about 15 minutes
    // to about 5. Files share nothing else: each test gets its own database, servers, temporary
    // directories and clock, and restores any global it stubs.
    isolate: false,
    maxWorkers: 2,
  },
});
