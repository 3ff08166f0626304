import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';

// Production resolves `@claw-approvals/client` through its package.json `exports`, to the JS its
// own build emits (tests and tsx read the source). Built here into a scratch node_modules, then
// imported by plain Node: no TypeScript, no alias, no tsconfig paths.

const ROOT = path.resolve(import.meta.dirname, '../..');
const PACKAGE = path.join(ROOT, 'packages/client');
const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'claw-client-package-'));
afterAll(() => fs.rm(scratch, { recursive: true, force: true }));

it('builds to JS that plain Node imports by the package name, with no dependencies', async () => {
  const manifest = JSON.parse(await fs.readFile(path.join(PACKAGE, 'package.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  expect(manifest.name).toBe('@claw-approvals/client');
  expect(manifest.dependencies).toBeUndefined();
  const installed = path.join(scratch, 'node_modules/@claw-approvals/client');
  await fs.mkdir(installed, { recursive: true });
  await fs.copyFile(path.join(PACKAGE, 'package.json'), path.join(installed, 'package.json'));
  const tsc = spawnSync(
    process.execPath,
    [
      path.join(ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      path.join(PACKAGE, 'tsconfig.json'),
      '--outDir',
      path.join(installed, 'dist'),
    ],
    { encoding: 'utf8' },
  );
  expect(tsc.stdout + tsc.stderr).toBe('');
  expect(tsc.status).toBe(0);

  // Browsers run it too: the emitted code imports nothing but its own files.
  const dist = path.join(installed, 'dist');
  for (const file of (await fs.readdir(dist)).filter((f) => f.endsWith('.js'))) {
    const code = await fs.readFile(path.join(dist, file), 'utf8');
    const imports = [...code.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]);
    expect(
      imports.filter((i) => !i!.startsWith('./')),
      file,
    ).toEqual([]);
    expect(code, file).not.toMatch(/\brequire\(|\bprocess\.|\bBuffer\b/);
  }
  expect(await fs.readdir(dist)).toContain('index.d.ts');

  await fs.writeFile(
    path.join(scratch, 'check.mjs'),
    `import { ClawClient, CLIENT_ROUTES, isClawError, ClawUnreachableError } from '@claw-approvals/client';
const c = new ClawClient({ baseUrl: 'http://127.0.0.1:9', agentKey: 'k_0123456789' });
const err = await c.getJob(1).catch((e) => e);
console.log(JSON.stringify({ routes: Object.keys(CLIENT_ROUTES).length, unreachable: err instanceof ClawUnreachableError && isClawError(err, 'ERR_UNREACHABLE') }));
`,
  );
  const run = spawnSync(process.execPath, ['check.mjs'], { cwd: scratch, encoding: 'utf8' });
  expect(run.stderr).toBe('');
  expect(JSON.parse(run.stdout)).toEqual({ routes: 9, unreachable: true });
});
