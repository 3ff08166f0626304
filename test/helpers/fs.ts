import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const dirs: string[] = [];

/** A temporary directory removed after the current test (test/setup/env.ts calls removeTempDirs). */
export async function tempDir(prefix = 'claw-test-'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** Removes every directory tempDir made since the last call. */
export async function removeTempDirs(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
}

export const REPO_POLICIES_DIR = new URL('../../policies/', import.meta.url).pathname;

/** Copies the shipped policies (and groups.json) into a fresh directory a test may edit. */
export async function copyPolicies(): Promise<string> {
  const dir = await tempDir('claw-policies-');
  for (const name of await fs.readdir(REPO_POLICIES_DIR)) {
    if (name.endsWith('.json') && !name.endsWith('.schema.json')) {
      await fs.copyFile(path.join(REPO_POLICIES_DIR, name), path.join(dir, name));
    }
  }
  return dir;
}
