import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { fatalLine } from '../../src/logger.js';
import { AppError } from '../../src/errors.js';
import { cli, stateEnv } from '../helpers/cli.js';
import { dialectName, type TestDb } from '../helpers/db.js';
import { REPO_POLICIES_DIR, tempDir } from '../helpers/fs.js';

const ROOT = new URL('../../', import.meta.url).pathname;
/** tsx's loader by path: the process runs in an empty directory, where `--import tsx` resolves nothing. */
const TSX = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
/** The checkout's tsconfig (its `paths` name the workspace packages), as `npx tsx` in the checkout reads it. */
const TSCONFIG = path.join(ROOT, 'tsconfig.json');
const ADMIN = 'admin-secret-never-in-a-line-0123456789';

const dbs: (TestDb | null)[] = [];
const servers: net.Server[] = [];
afterEach(async () => {
  await Promise.all(dbs.splice(0).map((d) => d?.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

interface Fatal {
  level: number;
  time: string;
  service: string;
  msg: string;
  error: { code: string; message: string; details?: { key: string; problem: string }[] };
}

/** The one line `serve` wrote to stderr, parsed; fails unless stderr is exactly one JSON line. */
function theLine(stderr: string): Fatal {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, stderr).toHaveLength(1);
  const line = JSON.parse(lines[0]!) as Fatal;
  expect(Object.keys(line)).toEqual(['level', 'time', 'service', 'msg', 'error']);
  expect(line).toMatchObject({ level: 60, service: 'claw-approvals', msg: 'start-up failed' });
  expect(new Date(line.time).toISOString()).toBe(line.time);
  return line;
}

describe(`serve's fatal start-up line (${dialectName})`, () => {
  it('bad configuration: one line with ERR_CONFIG_INVALID and each bad key, never a value', async () => {
    const r = await cli(['serve'], {
      PORT: 'eighty',
      ADMIN_TOKEN: 'short-secret',
      MATTERMOST_URL: 'http://mm.example',
      LOG_LEVEL: 'loud',
    });
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    const line = theLine(r.err);
    expect(line.error.code).toBe('ERR_CONFIG_INVALID');
    expect(line.error.details?.map((d) => d.key).sort()).toEqual(
      expect.arrayContaining(['ADMIN_TOKEN', 'LOG_LEVEL', 'PORT']),
    );
    expect(r.err).not.toContain('short-secret');
    expect(r.err).not.toContain('eighty');
  });

  it('database unreachable: ERR_DB_UNAVAILABLE, the password censored', async () => {
    const dir = await tempDir('claw-fatal-');
    const r = await cli(['serve'], {
      DATA_DIR: dir,
      POLICIES_DIR: REPO_POLICIES_DIR,
      ADMIN_TOKEN: ADMIN,
      DATABASE_URL: 'postgres://claw:pw-s3cret-value@127.0.0.1:1/claw',
    });
    expect(r.code).toBe(1);
    const line = theLine(r.err);
    expect(line.error.code).toBe('ERR_DB_UNAVAILABLE');
    expect(r.err).not.toContain('pw-s3cret-value');
    expect(r.err).not.toContain(ADMIN);
  });

  it('embedded database held by another process: ERR_DB_LOCKED', async () => {
    const dir = await tempDir('claw-fatal-');
    // As another host's server leaves it while it runs (refreshed moments ago).
    await fs.writeFile(path.join(dir, 'pglite.lock'), '1 another-host-7f3a token');
    const r = await cli(['serve'], { DATA_DIR: dir, POLICIES_DIR: REPO_POLICIES_DIR });
    expect(r.code).toBe(1);
    expect(theLine(r.err).error).toMatchObject({
      code: 'ERR_DB_LOCKED',
      message: expect.stringContaining('is in use by'),
    });
  });

  it('port taken: ERR_INTERNAL with the system’s reason, after closing what it opened', async () => {
    const busy = net.createServer();
    servers.push(busy);
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const { port } = busy.address() as net.AddressInfo;
    const s = await stateEnv({ POLICIES_DIR: REPO_POLICIES_DIR, HOST: '127.0.0.1', PORT: String(port) });
    dbs.push(s.db);
    const r = await cli(['serve'], s.env);
    expect(r.code).toBe(1);
    expect(theLine(r.err).error).toEqual({
      code: 'ERR_INTERNAL',
      message: expect.stringContaining('EADDRINUSE'),
    });
    // The database was closed: a CLI command can open it again at once.
    const after = await cli(['policy', 'list', '--json'], s.env);
    expect(after.code, after.err).toBe(0);
    // Two starts of the embedded database: slow on a busy machine.
  }, 120_000);

  it('censors configured secrets even from an error that is not ours', () => {
    const line = JSON.parse(
      fatalLine(new Error(`cannot reach https://x/?token=${ADMIN}`), { secrets: [ADMIN], now: new Date(0) }),
    ) as Fatal;
    expect(line).toEqual({
      level: 60,
      time: '1970-01-01T00:00:00.000Z',
      service: 'claw-approvals',
      msg: 'start-up failed',
      error: { code: 'ERR_INTERNAL', message: 'cannot reach https://x/?token=[redacted]' },
    });
    const ours = JSON.parse(fatalLine(new AppError('ERR_KEY_PERMISSIONS', 'mode 0644'))) as Fatal;
    expect(ours.error).toEqual({ code: 'ERR_KEY_PERMISSIONS', message: 'mode 0644' });
  });

  it('as a real process: exit 1, stdout empty, stderr the one line', async () => {
    const proc = spawn(process.execPath, ['--import', TSX, path.join(ROOT, 'src/main.ts'), 'serve'], {
      cwd: await tempDir('claw-fatal-cwd-'),
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        TSX_TSCONFIG_PATH: TSCONFIG,
        PORT: '99999',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d) => (out += String(d)));
    proc.stderr.on('data', (d) => (err += String(d)));
    const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
    expect(code).toBe(1);
    expect(out).toBe('');
    expect(theLine(err).error).toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      details: [{ key: 'PORT', problem: expect.any(String) }],
    });
  });

  it('other commands keep their human form', async () => {
    const r = await cli(['keys', 'show'], { PORT: 'eighty' });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error ERR_CONFIG_INVALID: /);
  });
});
