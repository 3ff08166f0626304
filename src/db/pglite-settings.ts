import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PGliteOptions } from '@electric-sql/pglite';

/**
 * What embedded PGlite's Postgres may keep in memory. PGlite's WebAssembly memory only grows,
 * and every page Postgres once touched stays resident for the life of the process, so these
 * bound the server's RSS, not just Postgres's appetite. Postgres's default 128 MB of
 * shared_buffers alone is about 125 MB of RSS (measured: 298 MB → 171 MB for PGlite opened and
 * idle); data beyond the buffers is read through the operating system's page cache, which at
 * this application's sizes costs no measurable time. maintenance_work_mem (64 MB by default)
 * is what a migration's CREATE INDEX may take, once, for good.
 */
export const PGLITE_SETTINGS: Readonly<Record<string, string>> = {
  shared_buffers: '16MB',
  maintenance_work_mem: '16MB',
};

/** PGlite's own start parameters, then ours: the last `-c` for a setting wins. */
export function pgliteStartParams(defaults: readonly string[]): string[] {
  return [...defaults, ...Object.entries(PGLITE_SETTINGS).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
}

/** PGlite writes PG_VERSION last when it creates a database (its own test for "exists"). */
export function pgliteDataDirExists(dir: string): boolean {
  return existsSync(path.join(dir, 'PG_VERSION'));
}

/**
 * The child: opens (and so creates) the database with the given start parameters, closes it
 * cleanly and exits 0. It exits when its parent goes (stdin closes) rather than write on alone.
 */
const CHILD = `
const [entry, dir, params] = process.argv.slice(1);
process.stdin.on('end', () => process.exit(3));
process.stdin.resume();
const { PGlite } = await import(entry);
const pg = await PGlite.create(dir, { startParams: JSON.parse(params) });
await pg.close();
process.exit(0);
`;

/**
 * Creates the embedded database in `dir` in a child process. PGlite creates a database by
 * starting a second, temporary Postgres instance beside the one it opens (with initdb's own
 * WebAssembly module besides): done in this process, their memory (over 500 MB) stays with it
 * until a garbage collection that may not come for hours. In a child it goes when the child
 * exits; this process then opens the database as on any later start. The caller holds the
 * data directory's lock throughout.
 */
export async function createPgliteDataDir(dir: string, startParams: readonly string[]): Promise<void> {
  const entry = pathToFileURL(createRequire(import.meta.url).resolve('@electric-sql/pglite')).href;
  const child = spawn(
    process.execPath,
    ['--input-type=module', '-e', CHILD, entry, dir, JSON.stringify(startParams)],
    // Nothing of this process's environment (it holds the configuration's secrets) is needed.
    { env: {}, stdio: ['pipe', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 64 * 1024) stderr += d;
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0 || !pgliteDataDirExists(dir)) {
    const last = stderr.trim().split('\n').filter(Boolean).slice(-3).join(' / ');
    throw new Error(`creating the database failed (exit ${code})${last ? `: ${last}` : ''}`);
  }
}

/** The options every embedded PGlite of this program is opened with. */
export function pgliteOptions(defaults: readonly string[]): PGliteOptions {
  return { startParams: pgliteStartParams(defaults) };
}
