import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVER_FILE } from '../../src/db/data-dir-lock.js';
import { loadSigningKey } from '../../src/tokens/signing-key.js';
import { spawnServe } from '../helpers/serve-child.js';
import { cli } from '../helpers/cli.js';
import { writePgliteDataDir } from '../helpers/db.js';
import { copyPolicies, tempDir } from '../helpers/fs.js';

/**
 * The real `claw-approvals serve` as its own process on the embedded database: the CLI goes
 * through it while it runs, and uses the database itself once it is gone, whether it stopped
 * (the address is withdrawn) or was killed (the lock and the address are left behind, stale).
 */

const ADMIN = 'admin-token-for-the-serve-child-tests-0123456789';
const running: ChildProcess[] = [];
afterEach(() => {
  for (const p of running.splice(0)) p.kill('SIGKILL');
});

async function serve(env: Record<string, string>) {
  const proc = spawnServe(env);
  running.push(proc);
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    proc.stderr!.on('data', (d) => (output += String(d)));
    proc.stdout!.on('data', (d) => {
      output += String(d);
      const m = /"msg":"listening"/.test(output)
        ? /"url":"([^"]+)"[^\n]*"msg":"listening"/.exec(output)
        : null;
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code}: ${output}`)));
  });
  return { proc, url, exited, output: () => output };
}

describe('CLI commands and a running `serve` process (embedded database)', () => {
  it('go through it while it runs; after it is killed, use the database itself; a stop withdraws the address', async () => {
    const dataDir = await tempDir('claw-admin-child-');
    await writePgliteDataDir(path.join(dataDir, 'pglite'));
    await loadSigningKey({ kind: 'generated', file: path.join(dataDir, 'keys', 'signing-key.jwk.json') });
    const env = { DATA_DIR: dataDir, POLICIES_DIR: await copyPolicies(), ADMIN_TOKEN: ADMIN };
    const lockFile = path.join(dataDir, 'pglite.lock');
    const serverFile = path.join(dataDir, SERVER_FILE);

    const first = await serve(env);
    const advertised = JSON.parse(await fs.readFile(serverFile, 'utf8')) as Record<string, unknown>;
    expect(advertised).toEqual({
      lock: await fs.readFile(lockFile, 'utf8'),
      pid: first.proc.pid,
      url: first.url,
    });
    expect(JSON.stringify(advertised)).not.toContain(ADMIN);

    const created = await cli(['agents', 'create', 'agent:while-serving'], env);
    expect(created.code, created.err).toBe(0);
    const key = (JSON.parse(created.out) as { key: string }).key;
    // The key works against the very server that created it.
    const me = await fetch(`${first.url}/v1/jobs?ready=1`, { headers: { authorization: `Bearer ${key}` } });
    expect(me.status).toBe(200);
    const policies = JSON.parse((await cli(['policy', 'list', '--json'], env)).out) as {
      policies: { name: string; active_hash: string }[];
    };
    const triage = policies.policies.find((p) => p.name === 'invoice-triage')!.active_hash;
    const pinned = await cli(['policy', 'pin', 'invoice-triage', triage, '--reason', 'while serving'], env);
    expect(pinned.out).toBe(
      `pinned invoice-triage to ${triage} (pin #1); running servers apply it within seconds`,
    );
    expect(first.output()).not.toContain(ADMIN);
    expect(first.output()).not.toContain(key);

    // Killed: nothing withdrawn, but the holder is gone, so the lock and the address are stale.
    first.proc.kill('SIGKILL');
    await first.exited;
    await fs.stat(serverFile);
    const after = await cli(['agents', 'list'], env);
    expect(after.code, after.err).toBe(0);
    expect(JSON.parse(after.out)).toEqual([
      expect.objectContaining({ id: 'agent:while-serving', revoked_at: null }),
    ]);
    await expect(fs.stat(serverFile)).rejects.toThrow();
    const list = JSON.parse((await cli(['policy', 'list', '--json'], env)).out) as {
      policies: { name: string; origin: string; pins: { reason: string; actor: string }[] }[];
    };
    expect(list.policies.find((p) => p.name === 'invoice-triage')).toMatchObject({
      origin: 'pin',
      pins: [{ reason: 'while serving', actor: 'tester' }],
    });

    // Stopped: the address and the lock go with it.
    const second = await serve(env);
    await fs.stat(serverFile);
    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    await expect(fs.stat(serverFile)).rejects.toThrow();
    await expect(fs.stat(lockFile)).rejects.toThrow();
  }, 600_000);
});
