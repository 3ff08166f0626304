import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { VERSION as RUNTIME_VERSION } from '../../src/runtime.js';
import { packageVersion, VERSION } from '../../src/version.js';
import { cli } from '../helpers/cli.js';
import { tempDir } from '../helpers/fs.js';

const ROOT = new URL('../../', import.meta.url).pathname;
/** tsx's loader by path: the process runs in an empty directory, where `--import tsx` resolves nothing. */
const TSX = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
/** The checkout's tsconfig (its `paths` name the workspace packages), as `npx tsx` in the checkout reads it. */
const TSCONFIG = path.join(ROOT, 'tsconfig.json');
const PACKAGE = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };

describe('claw-approvals --version', () => {
  it('prints package.json’s version, with --version and -V, needing no configuration', async () => {
    for (const flag of ['--version', '-V']) {
      // A configuration that would stop any command: the version is printed all the same.
      const r = await cli([flag], { PORT: 'not-a-port' });
      expect(r).toEqual({ code: 0, out: PACKAGE.version, err: '' });
    }
    expect(VERSION).toBe(PACKAGE.version);
    expect(RUNTIME_VERSION).toBe(PACKAGE.version);
  });

  it('as a real process', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', TSX, path.join(ROOT, 'src/main.ts'), '--version'],
      {
        cwd: await tempDir('claw-version-'),
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', TSX_TSCONFIG_PATH: TSCONFIG },
      },
    );
    expect(stdout).toBe(`${PACKAGE.version}\n`);
    // tsx compiles the program first: slow on a busy machine.
  });

  it('finds the package.json named claw-approvals above src/ and dist/src/, skipping others', async () => {
    const root = await tempDir('claw-version-');
    const deep = path.join(root, 'dist', 'src');
    await fs.mkdir(deep, { recursive: true });
    await fs.writeFile(
      path.join(root, 'package.json'),
      JSON.stringify({ name: 'claw-approvals', version: '2.3.4' }),
    );
    expect(packageVersion(deep)).toBe('2.3.4');
    // A package.json of something else in between (a workspace, a bundler's) is not ours.
    await fs.writeFile(
      path.join(root, 'dist', 'package.json'),
      JSON.stringify({ name: 'other', version: '9.9.9' }),
    );
    expect(packageVersion(deep)).toBe('2.3.4');
    await fs.writeFile(
      path.join(root, 'package.json'),
      JSON.stringify({ name: 'claw-approvals', version: 'v1' }),
    );
    expect(() => packageVersion(deep)).toThrow(/no valid version/);
    await fs.rm(path.join(root, 'package.json'));
    expect(() => packageVersion(deep)).toThrow(/no package.json of claw-approvals/);
  });
});
