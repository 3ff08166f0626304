import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Claw Bureau's schemas, fixtures and conformance vectors, read from the shared reference
 * directory next to the repository (`../shared/schemas/clawbureau`), never copied into it.
 * `CLAW_BUREAU_DIR` points elsewhere. A missing directory fails the test loudly: these
 * vectors are never skipped silently (`.ci/run` checks for the directory before it starts).
 */
export const CLAW_BUREAU_DIR = path.resolve(
  process.env.CLAW_BUREAU_DIR ?? new URL('../../../shared/schemas/clawbureau/', import.meta.url).pathname,
);

function requireDir(): string {
  if (!existsSync(path.join(CLAW_BUREAU_DIR, 'upstream'))) {
    throw new Error(
      `Claw Bureau reference data not found at ${CLAW_BUREAU_DIR}: check out ../shared next to the ` +
        'repository or set CLAW_BUREAU_DIR',
    );
  }
  return CLAW_BUREAU_DIR;
}

/** A path inside the reference directory (e.g. `fixtures/proof_bundle_pass.v1.json`). */
export function clawBureauPath(relative: string): string {
  return path.join(requireDir(), relative);
}

/** Parsed JSON from the reference directory. */
export function clawBureauJson<T = unknown>(relative: string): T {
  return JSON.parse(readFileSync(clawBureauPath(relative), 'utf8')) as T;
}

/** Upstream's repository root: the conformance manifest's paths are relative to it. */
export function upstreamPath(repoRelative: string): string {
  return path.join(requireDir(), 'upstream', repoRelative);
}
