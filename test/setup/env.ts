import { afterEach } from 'vitest';
import { removeTempDirs } from '../helpers/fs.js';

// Loaded before every test file (vitest.config.ts setupFiles). DATABASE_URL names the operator's
// database: no test, no in-process server or CLI and no process a test spawns may reach it by
// accident. The suite's PostgreSQL is TEST_DATABASE_URL (test/helpers/db.ts).
delete process.env.DATABASE_URL;
delete process.env.DATABASE_URL_FILE;

// Registered here, once for every test file: a helper module's own hooks would attach only to
// the first file that imports it when workers are reused across files.
afterEach(removeTempDirs);
