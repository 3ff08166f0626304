// Loaded before every test file (vitest.config.ts setupFiles). DATABASE_URL names the operator's
// database: no test, no in-process server or CLI and no process a test spawns may reach it by
// accident. The suite's PostgreSQL is TEST_DATABASE_URL (test/helpers/db.ts).
delete process.env.DATABASE_URL;
delete process.env.DATABASE_URL_FILE;
