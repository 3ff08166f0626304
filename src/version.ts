import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'claw-approvals';

/**
 * The version in this package's `package.json`, the one place it is written. Read when the
 * module loads, from the nearest `package.json` named claw-approvals above `fromDir`: the
 * checkout's from `src/` (tsx), the same file from `dist/src/` (the build, the image), so a
 * release changes one line and nothing can disagree with it.
 */
export function packageVersion(fromDir: string): string {
  for (let dir = fromDir, depth = 0; depth < 4; depth += 1) {
    const file = path.join(dir, 'package.json');
    let text: string | null = null;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // No package.json here: look one level up.
    }
    if (text !== null) {
      const pkg = JSON.parse(text) as { name?: unknown; version?: unknown };
      if (pkg.name === PACKAGE_NAME) {
        if (typeof pkg.version !== 'string' || !/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/.test(pkg.version))
          throw new Error(`${file} has no valid version`);
        return pkg.version;
      }
    }
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error(`no package.json of ${PACKAGE_NAME} above ${fromDir}`);
}

/** `claw-approvals --version`, the OpenAPI document's `info.version`, bundle metadata. */
export const VERSION: string = packageVersion(path.dirname(fileURLToPath(import.meta.url)));
