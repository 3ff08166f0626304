import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { VERSION } from '../../src/version.js';
import { copyPolicies, tempDir } from '../helpers/fs.js';

/**
 * `npm run build` bundles the server (scripts/build.mjs, `bundleServer`). What `serve` loads
 * statically from the bundle holds what serving needs and nothing else, judged from esbuild's
 * own account of the output (its metafile), not by timing; and the bundle runs.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
/** esbuild and a child process on a machine other runs share. */
const TIMEOUT = 120_000;

interface Metafile {
  outputs: Record<
    string,
    {
      entryPoint?: string;
      imports: { path: string; kind: string; external?: boolean }[];
      inputs: Record<string, unknown>;
    }
  >;
}

const build = (await import(pathToFileURL(path.join(ROOT, 'scripts/build.mjs')).href)) as {
  bundleServer(root: string, outdir: string): Promise<Metafile>;
};

/** Every input in `output` and in what it imports statically, transitively. */
function staticInputs(meta: Metafile, output: string): Set<string> {
  const inputs = new Set<string>();
  const seen = new Set<string>();
  const visit = (out: string) => {
    if (seen.has(out)) return;
    seen.add(out);
    const o = meta.outputs[out];
    if (!o) throw new Error(`no output ${out}`);
    for (const i of Object.keys(o.inputs)) inputs.add(i);
    for (const imp of o.imports) if (imp.kind === 'import-statement' && !imp.external) visit(imp.path);
  };
  visit(output);
  return inputs;
}

const running: ReturnType<typeof spawn>[] = [];
afterEach(() => {
  for (const p of running.splice(0)) p.kill('SIGKILL');
});

/** A package root for a bundle outside the checkout: its package.json, policies and node_modules. */
async function bundled() {
  const root = await tempDir('claw-bundle-');
  for (const name of ['package.json', 'policies', 'node_modules'])
    symlinkSync(path.join(ROOT, name), path.join(root, name));
  const outdir = path.join(root, 'dist/src');
  const meta = await build.bundleServer(ROOT, outdir);
  return { root, outdir, meta };
}

describe('the server bundle', () => {
  it(
    'serve loads statically neither other commands, nor the MCP SDK, nor a database driver; it runs',
    async () => {
      const { outdir, meta } = await bundled();
      const entry = Object.keys(meta.outputs).find((o) => meta.outputs[o]!.entryPoint === 'src/main.ts')!;
      expect(entry).toBeDefined();
      // `serve` is the entry plus the chunk `import('./serve-command.js')` brings, each with its static imports.
      const serveChunk = Object.keys(meta.outputs).find((o) =>
        Object.keys(meta.outputs[o]!.inputs).includes('src/cli/serve-command.ts'),
      )!;
      const atServe = new Set([...staticInputs(meta, entry), ...staticInputs(meta, serveChunk)]);
      // Not vacuous: the server and fastify are there.
      expect(atServe.has('src/server.ts')).toBe(true);
      expect([...atServe].some((i) => i.includes('node_modules/fastify/'))).toBe(true);
      const unwanted = [
        'node_modules/@modelcontextprotocol/sdk/',
        'src/mcp/mcp-server.ts',
        'src/cli/mcp-command.ts',
        'src/cli/doctor-command.ts',
        'src/cli/bundle-commands.ts',
        'src/cli/policy-commands.ts',
        'src/cli/agent-commands.ts',
        'src/cli/token-commands.ts',
        'src/cli/keys-commands.ts',
        'src/cli/pause-commands.ts',
        // Loaded by serve only with MATTERMOST_URL.
        'src/bot/bot.ts',
        'node_modules/ws/',
        'node_modules/pg/',
      ];
      expect([...atServe].filter((i) => unwanted.some((u) => i.includes(u)))).toEqual([]);
      // ...and they are in the bundle, for when they are asked for.
      const all = Object.values(meta.outputs).flatMap((o) => Object.keys(o.inputs));
      expect(all.some((i) => i.includes('node_modules/@modelcontextprotocol/sdk/'))).toBe(true);
      expect(all.some((i) => i.includes('node_modules/pg/'))).toBe(true);

      const main = path.join(outdir, 'main.js');
      const version = spawnSync(process.execPath, [main, '--version'], { encoding: 'utf8' });
      expect(version.stdout.trim()).toBe(VERSION);

      const dataDir = await tempDir('claw-bundle-data-');
      const proc = spawn(process.execPath, [main, 'serve'], {
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          PORT: '0',
          LOG_LEVEL: 'info',
          DATA_DIR: dataDir,
          POLICIES_DIR: await copyPolicies(),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      running.push(proc);
      let output = '';
      const url = await new Promise<string>((resolve, reject) => {
        proc.stderr!.on('data', (d) => (output += String(d)));
        proc.stdout!.on('data', (d) => {
          output += String(d);
          const m = /"url":"([^"]+)"[^\n]*"msg":"listening"/.exec(output);
          if (m) resolve(m[1]!);
        });
        proc.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${output}`)));
      });
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
    },
    TIMEOUT,
  );

  it(
    'refuses to bundle a module that finds files beside its own code',
    async () => {
      const root = await tempDir('claw-bundle-guard-');
      writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: 'mini', type: 'module' }));
      writeFileSync(path.join(root, 'tsconfig.build.json'), JSON.stringify({ compilerOptions: {} }));
      mkdirSync(path.join(root, 'src'));
      writeFileSync(
        path.join(root, 'src/main.ts'),
        "import { where } from 'locates';\nconsole.log(where);\n",
      );
      mkdirSync(path.join(root, 'node_modules/locates'), { recursive: true });
      symlinkSync(path.join(ROOT, 'node_modules/esbuild'), path.join(root, 'node_modules/esbuild'));
      writeFileSync(
        path.join(root, 'node_modules/locates/package.json'),
        JSON.stringify({ name: 'locates', main: 'index.js' }),
      );
      writeFileSync(
        path.join(root, 'node_modules/locates/index.js'),
        "exports.where = require('path').join(__dirname, 'data.bin');\n",
      );
      await expect(build.bundleServer(root, path.join(root, 'dist/src'))).rejects.toThrow(
        /cannot be bundled: node_modules\/locates\/index\.js/,
      );
    },
    TIMEOUT,
  );
});
