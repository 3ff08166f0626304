import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(start: string): string {
  let dir = start;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('claw-approvals: package.json not found above the program');
    dir = parent;
  }
  return dir;
}

/** The installed package (source checkout or image), whether running from `src/` or `dist/src/`. */
export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

/** JSON Schemas shipped with the product (not the operator's POLICIES_DIR). */
export const WPC_SCHEMA_FILE = path.join(PACKAGE_ROOT, 'policies', 'wpc.schema.json');
export const GROUPS_SCHEMA_FILE = path.join(PACKAGE_ROOT, 'policies', 'groups.schema.json');
