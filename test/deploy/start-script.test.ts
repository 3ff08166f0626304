import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/fs.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const HOUR_AGO = new Date(Date.now() - 3_600_000);
/** These run the real TypeScript compiler, twice at most, on a machine other runs share. */
const COMPILE_TIMEOUT = 180_000;

/**
 * A checkout in miniature: the real scripts/, a package.json, and the inputs and outputs the build
 * knows (src/, the client package, dist/), each made only when asked for.
 */
async function checkout(opts: { typescript?: boolean; sources?: boolean } = {}) {
  const root = await tempDir('claw-start-');
  cpSync(path.join(ROOT, 'scripts'), path.join(root, 'scripts'), { recursive: true });
  writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: 'mini', type: 'module' }));
  if (opts.typescript) symlinkSync(path.join(ROOT, 'node_modules'), path.join(root, 'node_modules'));
  if (opts.sources) {
    const compilerOptions = {
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      target: 'ES2022',
      types: [],
      skipLibCheck: true,
    };
    mkdirSync(path.join(root, 'src'));
    // What main.js gets as its command line is what start.mjs was given after the script.
    writeFileSync(
      path.join(root, 'src/main.ts'),
      'declare const process: { argv: string[] };\nconsole.log(JSON.stringify(process.argv.slice(2)));\n',
    );
    writeFileSync(
      path.join(root, 'tsconfig.build.json'),
      JSON.stringify({
        compilerOptions: { ...compilerOptions, outDir: 'dist', rootDir: '.' },
        include: ['src'],
      }),
    );
    mkdirSync(path.join(root, 'packages/client/src'), { recursive: true });
    writeFileSync(path.join(root, 'packages/client/package.json'), JSON.stringify({ type: 'module' }));
    writeFileSync(path.join(root, 'packages/client/src/index.ts'), 'export const client = 1;\n');
    writeFileSync(
      path.join(root, 'packages/client/tsconfig.json'),
      JSON.stringify({
        compilerOptions: { ...compilerOptions, outDir: 'dist', rootDir: 'src' },
        include: ['src'],
      }),
    );
  }
  return root;
}

/** Writes a finished build by hand: the outputs, and the stamp as build.mjs writes it for the inputs as they are now. */
function fakeBuild(root: string) {
  mkdirSync(path.join(root, 'dist/src'), { recursive: true });
  mkdirSync(path.join(root, 'packages/client/dist'), { recursive: true });
  writeFileSync(path.join(root, 'dist/src/main.js'), 'console.log(JSON.stringify(process.argv.slice(2)));\n');
  writeFileSync(path.join(root, 'packages/client/dist/index.js'), 'export const client = 1;\n');
  const stamp = spawnSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      'const b = await import(process.argv[1]); b.writeStamp(process.argv[2], b.inputManifest(process.argv[2]));',
      pathToFileURL(path.join(root, 'scripts/build.mjs')).href,
      root,
    ],
    { encoding: 'utf8' },
  );
  expect(stamp.stderr).toBe('');
}

function run(root: string, script: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, 'scripts', script), ...args], {
    cwd: root,
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('npm start (scripts/start.mjs)', () => {
  it('runs the build as it is when nothing changed since: no compiler, its arguments passed on', async () => {
    const root = await checkout();
    mkdirSync(path.join(root, 'src'));
    writeFileSync(path.join(root, 'src/main.ts'), '');
    utimesSync(path.join(root, 'src/main.ts'), HOUR_AGO, HOUR_AGO);
    fakeBuild(root);
    // No TypeScript in this checkout: it would fail if it tried to build.
    const r = run(root, 'start.mjs', 'serve', '--flag');
    expect(r).toMatchObject({ status: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toEqual(['serve', '--flag']);
  });

  it('refuses to start, saying why, when there is no build and no compiler (a production install)', async () => {
    const root = await checkout();
    const r = run(root, 'start.mjs', 'serve');
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(
      'cannot start: there is no complete build yet, and TypeScript is not installed to build it',
    );
  });

  it('refuses a build whose inputs differ from those it was built from, naming the input, and one with an output missing', async () => {
    const root = await checkout();
    mkdirSync(path.join(root, 'src/db'), { recursive: true });
    writeFileSync(path.join(root, 'src/db/old.ts'), 'export const v = 1;\n');
    utimesSync(path.join(root, 'src/db/old.ts'), HOUR_AGO, HOUR_AGO);
    fakeBuild(root);
    expect(run(root, 'start.mjs', 'serve').status).toBe(0);
    // Added (even dated before the build, as tar x or rsync -a leave it).
    mkdirSync(path.join(root, 'migrations'));
    writeFileSync(path.join(root, 'migrations/20261128_new.ts'), '');
    utimesSync(path.join(root, 'migrations/20261128_new.ts'), HOUR_AGO, HOUR_AGO);
    expect(run(root, 'start.mjs', 'serve').stderr).toContain(
      'cannot start: migrations/20261128_new.ts was added since the last build',
    );
    fakeBuild(root);
    expect(run(root, 'start.mjs', 'serve').status).toBe(0);
    // Changed, with an older date than it had (cp -p of an older copy).
    const older = new Date(HOUR_AGO.getTime() - 86_400_000);
    writeFileSync(path.join(root, 'src/db/old.ts'), 'export const v = 22;\n');
    utimesSync(path.join(root, 'src/db/old.ts'), older, older);
    expect(run(root, 'start.mjs', 'serve').stderr).toContain('src/db/old.ts changed since the last build');
    fakeBuild(root);
    // The same size, only the date moved back.
    utimesSync(path.join(root, 'src/db/old.ts'), HOUR_AGO, HOUR_AGO);
    expect(run(root, 'start.mjs', 'serve').stderr).toContain('src/db/old.ts changed since the last build');
    fakeBuild(root);
    // Removed.
    rmSync(path.join(root, 'src/db/old.ts'));
    expect(run(root, 'start.mjs', 'serve').stderr).toContain(
      'src/db/old.ts was removed since the last build',
    );
    fakeBuild(root);
    writeFileSync(path.join(root, 'tsconfig.json'), '{}');
    expect(run(root, 'start.mjs', 'serve').stderr).toContain('tsconfig.json was added since the last build');
    fakeBuild(root);
    rmSync(path.join(root, 'packages/client/dist/index.js'));
    expect(run(root, 'start.mjs', 'serve').stderr).toContain('packages/client/dist/index.js is missing');
  });

  it('refuses a stamp that lists no inputs (a build from before the manifest, or a stamp made by hand)', async () => {
    const root = await checkout();
    fakeBuild(root);
    writeFileSync(path.join(root, 'dist/.build-stamp'), 'by hand\n');
    expect(run(root, 'start.mjs', 'serve').stderr).toContain(
      'cannot start: the last build recorded no list of its inputs',
    );
  });

  it(
    'builds first when stale and TypeScript is there, then starts; the next start does not build',
    async () => {
      const root = await checkout({ typescript: true, sources: true });
      const first = run(root, 'start.mjs', 'serve');
      expect(first.stderr).toContain('building first (there is no complete build yet)');
      expect(first.status).toBe(0);
      expect(JSON.parse(first.stdout)).toEqual(['serve']);
      expect(existsSync(path.join(root, 'packages/client/dist/index.js'))).toBe(true);
      const second = run(root, 'start.mjs', 'serve');
      expect(second).toMatchObject({ status: 0, stderr: '' });
      expect(JSON.parse(second.stdout)).toEqual(['serve']);
    },
    COMPILE_TIMEOUT,
  );

  it(
    'does not start on a failed build, and leaves no stamp that would make it look current',
    async () => {
      const root = await checkout({ typescript: true, sources: true });
      writeFileSync(
        path.join(root, 'packages/client/src/index.ts'),
        'export const n: number = "not a number";\n',
      );
      const r = run(root, 'start.mjs', 'serve');
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('the build failed: not starting');
      expect(r.stdout).not.toContain('serve');
      expect(existsSync(path.join(root, 'dist/.build-stamp'))).toBe(false);
    },
    COMPILE_TIMEOUT,
  );
});

describe('npm run build and prepare (scripts/build.mjs)', () => {
  it(
    'prepare builds a fresh checkout once; again it does nothing',
    async () => {
      const root = await checkout({ typescript: true, sources: true });
      expect(run(root, 'build.mjs', '--if-stale').status).toBe(0);
      expect(existsSync(path.join(root, 'dist/src/main.js'))).toBe(true);
      const stamp = path.join(root, 'dist/.build-stamp');
      // Date the stamp an hour back: a second prepare, with no input changed, must leave it be.
      utimesSync(stamp, HOUR_AGO, HOUR_AGO);
      expect(run(root, 'build.mjs', '--if-stale')).toMatchObject({ status: 0, stderr: '', stdout: '' });
      expect(Math.round(statSync(stamp).mtimeMs)).toBe(HOUR_AGO.getTime());
    },
    COMPILE_TIMEOUT,
  );

  it('prepare on a production install (no TypeScript) builds nothing and says so; build itself fails', async () => {
    const root = await checkout();
    const prepare = run(root, 'build.mjs', '--if-stale');
    expect(prepare.status).toBe(0);
    expect(prepare.stderr).toContain('TypeScript is not installed (a production install): not building');
    const build = run(root, 'build.mjs');
    expect(build.status).not.toBe(0);
    expect(build.stderr).toContain('TypeScript is not installed');
  });
});
