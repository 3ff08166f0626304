// The build, in one place: `npm run build` (always), `prepare` at install and `npm start` (only
// when the build is missing or its sources differ from those it was built from) all run this file. Plain JavaScript, so
// it runs before anything is compiled.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

/**
 * Packages left out of the server bundle, loaded from node_modules as they are: each finds files
 * of its own beside its code (PGlite its WebAssembly, pino its transport workers, @fastify/swagger
 * its package.json), which a bundle would move away from them; and optional native add-ons.
 */
export const BUNDLE_EXTERNAL = [
  '@electric-sql/pglite',
  'pino',
  '@fastify/swagger',
  'pg-native',
  'bufferutil',
  'utf-8-validate',
];
/** Our modules that locate files from their own URL, and how each is served inside the bundle. */
const SELF_LOCATING = {
  // Walk up to package.json: any depth below the package root works.
  'src/paths.ts': null,
  'src/version.ts': null,
  // Resolves PGlite by package name: node_modules above is found from any depth too.
  'src/db/pglite-settings.ts': null,
  // Requires Ajv's runtime helpers by package name, likewise.
  'src/policy/policy-schema-validators.js': null,
  // Reads the browser modules tsc emitted beside it (dist/src/http/bundle-page/*.js).
  'src/http/bundle-page/page-script.ts': '../http/bundle-page/page-script.js',
};
const LOCATES_FILES = /\b__dirname\b|\b__filename\b|\bimport\.meta\.url\b|\brequire\.resolve\(/;
const withoutComments = (text) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');

/** esbuild as installed in this checkout (a dev dependency), or null. */
export async function esbuildOf(root = ROOT) {
  try {
    return await import(
      pathToFileURL(createRequire(path.join(root, 'package.json')).resolve('esbuild')).href
    );
  } catch {
    return null;
  }
}

/**
 * The server as `node dist/src/main.js` runs it: src/main.ts and what it imports, bundled into
 * dist/src/chunks/ (a dynamic import stays one: `serve` still loads no other command, nor the
 * MCP SDK before /mcp is asked for), dist/src/main.js the entry. Node then reads a few dozen
 * files at start instead of about 1,100 (measured: a third less CPU to the first /healthz).
 * A bundled module that finds files beside itself would silently look in the wrong place, so
 * such a module fails the build unless its package is in BUNDLE_EXTERNAL (or, ours, is handled
 * in SELF_LOCATING). Returns esbuild's metafile.
 */
export async function bundleServer(root = ROOT, outdir = path.join(root, 'dist/src')) {
  const esbuild = await esbuildOf(root);
  if (!esbuild) throw new Error('esbuild is not installed: run npm ci (with dev dependencies) to build');
  const chunks = path.join(outdir, 'chunks');
  rmSync(chunks, { recursive: true, force: true });
  const refused = [];
  const guard = {
    name: 'files-beside-the-code',
    setup(b) {
      b.onLoad({ filter: /\.(c|m)?[jt]s$/ }, (args) => {
        const rel = path.relative(root, args.path).split(path.sep).join('/');
        const text = readFileSync(args.path, 'utf8');
        if (Object.hasOwn(SELF_LOCATING, rel)) {
          const target = SELF_LOCATING[rel];
          if (target === null) return undefined;
          return {
            contents: text.replaceAll(
              'import.meta.url',
              `new URL(${JSON.stringify(target)}, import.meta.url).href`,
            ),
            loader: 'ts',
          };
        }
        if (LOCATES_FILES.test(withoutComments(text))) refused.push(rel);
        return undefined;
      });
    },
  };
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: { main: 'src/main.ts' },
    outdir: chunks,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // The build's tsconfig resolves @claw-approvals/client to its built package, as tsc does.
    tsconfig: 'tsconfig.build.json',
    external: BUNDLE_EXTERNAL,
    // CommonJS dependencies inside an ES module bundle still call require().
    banner: {
      js: "import { createRequire as __bundleRequire } from 'node:module';\nconst require = __bundleRequire(import.meta.url);",
    },
    sourcemap: true,
    metafile: true,
    logLevel: 'warning',
    plugins: [guard],
  });
  if (refused.length > 0)
    throw new Error(
      `these modules find files beside their own code and cannot be bundled: ${refused.join(', ')}; add their package to BUNDLE_EXTERNAL`,
    );
  writeFileSync(
    path.join(outdir, 'main.js'),
    "#!/usr/bin/env node\n// The server is bundled (scripts/build.mjs): see chunks/.\nimport './chunks/main.js';\n",
  );
  return result.metafile;
}

/**
 * Compiles every project (type-checked; tsc's output is what the bundle page reads), then bundles
 * the server; the stamp is written only when all of it succeeded.
 */
export async function build(root = ROOT) {
  const tsc = typescriptCompiler(root);
  if (!tsc) throw new Error('TypeScript is not installed: run npm ci (with dev dependencies) to build');
  const inputs = inputManifest(root);
  for (const project of PROJECTS) {
    const run = spawnSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'inherit' });
    if (run.status !== 0) return false;
  }
  try {
    await bundleServer(root);
  } catch (err) {
    process.stderr.write(`claw-approvals: bundling the server failed: ${err.message}\n`);
    return false;
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
    process.exitCode = (await build()) ? 0 : 1;
  }
}
