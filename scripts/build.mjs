// The build, in one place: `npm run build` (always), `prepare` at install and `npm start` (only
// when the build is missing or its sources differ from those it was built from) all run this file. Plain JavaScript, so
// it runs before anything is compiled.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The TypeScript projects, in order: the client package first, since src imports it. */
const PROJECTS = ['packages/client/tsconfig.json', 'tsconfig.build.json'];
/** What the build reads: any file here added, removed or changed since the build makes it stale. */
const INPUTS = [
  'src',
  'migrations',
  'packages/client/src',
  'tsconfig.json',
  'tsconfig.build.json',
  'packages/client/tsconfig.json',
];
/** What the server loads: one missing makes the build stale whatever the stamp says. */
const OUTPUTS = ['dist/src/main.js', 'packages/client/dist/index.js'];
/**
 * Written after every project compiled without error: the inputs as they were when that build
 * began (path, size, mtime), so that any difference counts, not only a newer date. Sources
 * brought in with their old dates (rsync -a, cp -p, tar x) or removed are seen too.
 */
export const STAMP = 'dist/.build-stamp';

/** Adds every file under `rel` (a file or a directory) to `into`: path → [size, mtimeMs]. */
function listFiles(root, rel, into) {
  const stat = statSync(path.join(root, rel), { throwIfNoEntry: false });
  if (!stat) return;
  if (!stat.isDirectory()) {
    into[rel.split(path.sep).join('/')] = [stat.size, stat.mtimeMs];
    return;
  }
  for (const entry of readdirSync(path.join(root, rel)).sort()) listFiles(root, path.join(rel, entry), into);
}

/** Every input file as it is now: `{ "src/main.ts": [size, mtimeMs], ... }`. */
export function inputManifest(root = ROOT) {
  const files = {};
  for (const input of INPUTS) listFiles(root, input, files);
  return files;
}

/** Records that the build of `manifest` (taken when it began) completed. */
export function writeStamp(root, manifest) {
  writeFileSync(path.join(root, STAMP), `${JSON.stringify({ inputs: manifest })}\n`);
}

function recordedInputs(root) {
  try {
    const inputs = JSON.parse(readFileSync(path.join(root, STAMP), 'utf8'))?.inputs;
    return inputs && typeof inputs === 'object' && !Array.isArray(inputs) ? inputs : null;
  } catch {
    return null;
  }
}

/**
 * Why the build cannot be used as it is, or null when it is current. It stats every input
 * (about 230 files) and compares them with the stamp's list.
 */
export function staleReason(root = ROOT) {
  if (!existsSync(path.join(root, STAMP))) return 'there is no complete build yet';
  for (const out of OUTPUTS) if (!existsSync(path.join(root, out))) return `${out} is missing`;
  const built = recordedInputs(root);
  if (!built) return 'the last build recorded no list of its inputs';
  const now = inputManifest(root);
  for (const [rel, was] of Object.entries(built)) {
    const is = now[rel];
    if (!is) return `${rel} was removed since the last build`;
    if (!Array.isArray(was) || was[0] !== is[0] || was[1] !== is[1])
      return `${rel} changed since the last build`;
  }
  for (const rel of Object.keys(now))
    if (!Object.hasOwn(built, rel)) return `${rel} was added since the last build`;
  return null;
}

/** The TypeScript compiler, or null where dev dependencies are not installed. */
export function typescriptCompiler(root = ROOT) {
  try {
    return createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    return null;
  }
}

/** Compiles every project; the stamp is written only when all of them compiled cleanly. */
export function build(root = ROOT) {
  const tsc = typescriptCompiler(root);
  if (!tsc) throw new Error('TypeScript is not installed: run npm ci (with dev dependencies) to build');
  const inputs = inputManifest(root);
  for (const project of PROJECTS) {
    const run = spawnSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'inherit' });
    if (run.status !== 0) return false;
  }
  // The inputs as they were when the build began: a source saved while it ran differs, so the next start rebuilds.
  writeStamp(root, inputs);
  return true;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const ifStale = process.argv.includes('--if-stale');
  if (ifStale && !typescriptCompiler()) {
    // `npm ci --omit=dev`: nothing to build with. Not an error here: `npm start` refuses, saying so.
    process.stderr.write(
      'claw-approvals: TypeScript is not installed (a production install): not building\n',
    );
  } else if (!ifStale || staleReason()) {
    process.exitCode = build() ? 0 : 1;
  }
}
