#!/usr/bin/env node
// Writes the OpenClaw plugin as a self-contained package directory, the shape an OpenClaw
// gateway loads (`plugins.load.paths`) or installs (`openclaw plugins install <dir>`):
//
//   <dest>/package.json, openclaw.plugin.json, src/*.ts        the plugin (OpenClaw loads TypeScript)
//   <dest>/node_modules/@claw-approvals/client/                the typed client, compiled
//
// OpenClaw copies a plugin's package into its own capture directory before loading it and
// refuses imports that leave the package, so the client is copied in, not linked. Run from a
// checkout after `npm ci` (it uses the repository's TypeScript):
//
//   node integrations/openclaw/scripts/stage-plugin.mjs /srv/openclaw/plugins/claw-approvals
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const PLUGIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = path.resolve(PLUGIN, '../..');
const CLIENT = path.join(ROOT, 'packages/client');

function fail(message) {
  process.stderr.write(`stage-plugin: ${message}\n`);
  process.exit(1);
}

export function stagePlugin(dest) {
  const target = path.resolve(dest);
  // The directory's name becomes the package's name inside OpenClaw's capture; `openclaw`
  // would shadow the host package the plugin imports its SDK from.
  if (path.basename(target) === 'openclaw')
    throw new Error('name the plugin directory anything but "openclaw"');
  if (
    fs.existsSync(target) &&
    fs.readdirSync(target).length > 0 &&
    !fs.existsSync(path.join(target, 'openclaw.plugin.json'))
  )
    throw new Error(`${target} exists and is not a staged plugin: refusing to replace it`);
  let tsc;
  try {
    tsc = createRequire(path.join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    throw new Error('TypeScript is not installed: run `npm ci` in the repository first');
  }
  fs.rmSync(target, { recursive: true, force: true });
  fs.mkdirSync(path.join(target, 'src'), { recursive: true });

  const manifest = JSON.parse(fs.readFileSync(path.join(PLUGIN, 'package.json'), 'utf8'));
  const client = JSON.parse(fs.readFileSync(path.join(CLIENT, 'package.json'), 'utf8'));
  const staged = {
    name: manifest.name,
    version: manifest.version,
    description: manifest.description,
    type: 'module',
    license: manifest.license,
    private: true,
    openclaw: manifest.openclaw,
    dependencies: { [client.name]: client.version },
    peerDependencies: manifest.peerDependencies,
  };
  fs.writeFileSync(path.join(target, 'package.json'), `${JSON.stringify(staged, null, 2)}\n`);
  fs.copyFileSync(path.join(PLUGIN, 'openclaw.plugin.json'), path.join(target, 'openclaw.plugin.json'));
  for (const name of fs.readdirSync(path.join(PLUGIN, 'src'))) {
    if (name.endsWith('.ts')) fs.copyFileSync(path.join(PLUGIN, 'src', name), path.join(target, 'src', name));
  }

  const clientDir = path.join(target, 'node_modules', client.name);
  fs.mkdirSync(clientDir, { recursive: true });
  const built = spawnSync(
    process.execPath,
    [
      tsc,
      '-p',
      path.join(CLIENT, 'tsconfig.json'),
      '--outDir',
      path.join(clientDir, 'dist'),
      '--sourceMap',
      'false',
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (built.status !== 0) throw new Error(`compiling ${client.name} failed:\n${built.stdout}${built.stderr}`);
  const clientManifest = { ...client };
  delete clientManifest.scripts;
  fs.writeFileSync(path.join(clientDir, 'package.json'), `${JSON.stringify(clientManifest, null, 2)}\n`);
  return target;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dest = process.argv[2];
  if (!dest || process.argv.length > 3)
    fail('usage: node integrations/openclaw/scripts/stage-plugin.mjs <directory>');
  try {
    process.stdout.write(`${stagePlugin(dest)}\n`);
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
}
