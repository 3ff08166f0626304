import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnServe } from '../helpers/serve-child.js';
import { cli, stateEnv } from '../helpers/cli.js';
import type { TestDb } from '../helpers/db.js';
import { dialectName } from '../helpers/db.js';
import { REPO_POLICIES_DIR } from '../helpers/fs.js';

const running: ChildProcess[] = [];
const dbs: (TestDb | null)[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) p.kill('SIGKILL');
  await Promise.all(dbs.splice(0).map((d) => d?.close()));
});

interface Server {
  proc: ChildProcess;
  url: string;
  logs: () => Record<string, unknown>[];
  exited: Promise<number | null>;
}

/** Starts `claw-approvals serve` as a real process and waits for its "listening" log line. */
async function serve(env: Record<string, string>): Promise<Server> {
  const proc = spawnServe(env);
  running.push(proc);
  let buffer = '';
  let stderr = '';
  const lines: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${buffer}${stderr}`)), 120_000);
    proc.stderr!.on('data', (d) => {
      stderr += String(d);
    });
    proc.stdout!.on('data', (chunk) => {
      buffer += String(chunk);
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        nl = buffer.indexOf('\n');
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          lines.push(entry);
          if (entry.msg === 'listening') {
            clearTimeout(timer);
            resolve(String(entry.url));
          }
        } catch {
          /* not a log line */
        }
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      const logged = lines.map((l) => JSON.stringify(l)).join('\n');
      reject(new Error(`server exited with ${code}: ${stderr}\n${logged}${buffer}`));
    });
  });
  return { proc, url, logs: () => lines, exited };
}

describe(`claw-approvals serve (${dialectName})`, () => {
  it('starts on its defaults, answers health, readiness and JWKS, stops on SIGTERM, and reuses key and data', async () => {
    const s = await stateEnv({ POLICIES_DIR: REPO_POLICIES_DIR });
    dbs.push(s.db);
    const first = await serve(s.env);
    expect(first.logs()[0]).toMatchObject({
      level: 30,
      mode: 'api-only',
      msg: expect.stringContaining('API-only'),
    });
    expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${first.url}/readyz`);
    expect(ready.status).toBe(200);
    const jwks1 = (await (await fetch(`${first.url}/.well-known/jwks.json`)).json()) as {
      keys: { kid: string }[];
    };
    expect(jwks1.keys).toHaveLength(1);
    const keyFile = path.join(s.env.DATA_DIR!, 'keys', 'signing-key.jwk.json');
    expect((await fs.stat(keyFile)).mode & 0o777).toBe(0o600);
    first.proc.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(first.logs().some((l) => l.msg === 'stopped')).toBe(true);

    const second = await serve(s.env);
    const jwks2 = (await (await fetch(`${second.url}/.well-known/jwks.json`)).json()) as {
      keys: { kid: string }[];
    };
    expect(jwks2.keys.map((k) => k.kid)).toEqual(jwks1.keys.map((k) => k.kid));
    expect(second.logs().find((l) => l.msg === 'state opened')).toMatchObject({ keyCreated: false });
    // Nothing new to register on a second start with the same files.
    expect(second.logs().filter((l) => l.msg === 'policy version registered')).toHaveLength(0);
    second.proc.kill('SIGINT');
    expect(await second.exited).toBe(0);
  });

  it('with Mattermost unreachable: starts, says why /readyz is 503, never logs the token, stops cleanly', async () => {
    const s = await stateEnv({
      POLICIES_DIR: REPO_POLICIES_DIR,
      MATTERMOST_TOKEN: 'mm-secret-token-value',
      MATTERMOST_URL: 'http://127.0.0.1:9',
    });
    dbs.push(s.db);
    const server = await serve(s.env);
    expect(server.logs()[0]).toMatchObject({
      level: 30,
      mode: 'mattermost',
      mattermostUrl: 'http://127.0.0.1:9',
    });
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
    const text = await ready.text();
    const body = JSON.parse(text) as { checks: Record<string, { ok: boolean; reason?: string }> };
    expect(body.checks.database!.ok).toBe(true);
    // Without ADMIN_TOKEN only the general reason: no server address, no error detail.
    expect(body.checks.mattermost).toEqual({ ok: false, reason: 'Mattermost not connected' });
    expect(text).not.toContain('127.0.0.1:9');
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(JSON.stringify(server.logs())).not.toContain('mm-secret-token-value');
  });

  it('refuses to start with a key file others can read, and exits non-zero', async () => {
    const s = await stateEnv({ POLICIES_DIR: REPO_POLICIES_DIR });
    dbs.push(s.db);
    const keyFile = path.join(s.env.DATA_DIR!, 'loose.jwk.json');
    const res0 = await cli(['keys', 'show'], s.env);
    expect(res0.code).toBe(0);
    await fs.copyFile(path.join(s.env.DATA_DIR!, 'keys', 'signing-key.jwk.json'), keyFile);
    await fs.chmod(keyFile, 0o644);
    await expect(serve({ ...s.env, SIGNING_KEY_FILE: keyFile })).rejects.toThrow(
      /exited with 1: .*ERR_KEY_PERMISSIONS/s,
    );
  });

  it('exits non-zero with a clear message when the database is unreachable, never showing its password', async () => {
    const failure = await serve({
      DATABASE_URL: 'postgres://claw:userinfo-s3cret@127.0.0.1:1/claw?sslpassword=query-s3cret',
      DATA_DIR: '/tmp/claw-unused',
    }).catch((e: unknown) => e as Error);
    expect(failure).toBeInstanceOf(Error);
    // The message carries everything the process wrote: stderr and its log lines.
    expect((failure as Error).message).toMatch(/exited with 1: .*ERR_DB_UNAVAILABLE.*connection refused/s);
    expect((failure as Error).message).toContain('sslpassword=***');
    expect((failure as Error).message).not.toContain('s3cret');
  });
});
