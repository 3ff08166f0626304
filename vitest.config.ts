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
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file gets a fresh database; two workers keep a 2-core machine responsive.
    maxWorkers: 2,
  },
});
