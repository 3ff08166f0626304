import { createCliContext } from '../../src/cli/context.js';
import { runCli } from '../../src/cli/program.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { loadSigningKey } from '../../src/tokens/signing-key.js';
import path from 'node:path';
import { createTestDb, TEST_PG_URL, type TestDb, writePgliteDataDir } from './db.js';
import { tempDir } from './fs.js';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Runs the CLI in-process, exactly as main.ts does, with the given environment. */
export async function cli(args: string[], env: Record<string, string | undefined>): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const ctx = createCliContext({
    loadConfig: () => loadConfig(env),
    makeLogger: () => createLogger('silent'),
    output: { out: (t) => out.push(t), err: (t) => err.push(t) },
    defaultActor: 'tester',
  });
  const code = await runCli(['node', 'claw-approvals', ...args], ctx);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/**
 * An environment for a stateful command on the dialect under test: a fresh PostgreSQL
 * database, or an embedded PGlite data directory. Neither is migrated: the command under test
 * migrates as on a first start. The PGlite directory holds what PGlite's initdb writes (copied,
 * which takes milliseconds where initdb takes seconds).
 */
export async function stateEnv(
  extra: Record<string, string> = {},
  opts: { withKey?: boolean } = {},
): Promise<{ env: Record<string, string>; db: TestDb | null }> {
  const dataDir = await tempDir('claw-data-');
  // As after a first `serve`: CLI commands never create the key themselves.
  if (opts.withKey !== false) {
    await loadSigningKey({ kind: 'generated', file: path.join(dataDir, 'keys', 'signing-key.jwk.json') });
  }
  if (TEST_PG_URL) {
    const db = await createTestDb({ migrate: false });
    return { env: { DATA_DIR: dataDir, DATABASE_URL: db.url!, ...extra }, db };
  }
  await writePgliteDataDir(path.join(dataDir, 'pglite'));
  return { env: { DATA_DIR: dataDir, ...extra }, db: null };
}
