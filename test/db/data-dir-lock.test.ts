import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import {
  advertiseServer,
  dataDirHolder,
  LOCK_REFRESH_MS,
  LOCK_STALE_MS,
  lockDataDir,
  SERVER_FILE,
} from '../../src/db/data-dir-lock.js';

async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'claw-lock-'));
}

async function foreignLock(dir: string, ageMs: number): Promise<string> {
  const file = path.join(dir, 'pglite.lock');
  await fs.writeFile(file, '1 crashed-container-7f3a token');
  const at = new Date(Date.now() - ageMs);
  await fs.utimes(file, at, at);
  return file;
}

describe('the embedded database lock left by another host', () => {
  it('is refused while its holder could still be refreshing it, naming the file to remove', async () => {
    const dir = await tempDir();
    const file = await foreignLock(dir, 1_000);
    await expect(lockDataDir(dir)).rejects.toMatchObject({
      code: 'ERR_DB_LOCKED',
      message: expect.stringContaining(`remove ${file}`),
    });
  });

  it('is taken over once nobody has refreshed it for the stale period (a crashed container)', async () => {
    const dir = await tempDir();
    const file = await foreignLock(dir, LOCK_STALE_MS + 5_000);
    const lock = await lockDataDir(dir);
    expect((await fs.readFile(file, 'utf8')).split(' ')[0]).toBe(String(process.pid));
    await lock.release();
    await expect(fs.stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('is kept fresh by its holder, so a live holder on another host is never judged abandoned', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const dir = await tempDir();
      const lock = await lockDataDir(dir);
      const file = path.join(dir, 'pglite.lock');
      const old = new Date(Date.now() - LOCK_STALE_MS - 5_000);
      await fs.utimes(file, old, old);
      vi.advanceTimersByTime(LOCK_REFRESH_MS);
      await vi.waitFor(async () => {
        expect(Date.now() - (await fs.stat(file)).mtimeMs).toBeLessThan(LOCK_STALE_MS);
      });
      await lock.release();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('where the CLI may send ADMIN_TOKEN (the address a server holding the lock left)', () => {
  const OTHER_UID = 4242;
  const attacker = 'http://attacker.example:8080';

  /** A data directory as a live local holder leaves it: PID 1 holds the lock and names `url`. */
  async function planted(url: string) {
    const dir = await tempDir();
    await fs.chmod(dir, 0o700);
    const lockFile = path.join(dir, 'pglite.lock');
    const serverFile = path.join(dir, SERVER_FILE);
    const lock = `1 ${os.hostname()} x`;
    await fs.writeFile(lockFile, lock, { mode: 0o600 });
    await fs.writeFile(serverFile, JSON.stringify({ lock, pid: 1, url }), { mode: 0o600 });
    return { dir, lockFile, serverFile };
  }

  const refused = (why: string) => ({
    code: 'ERR_DB_LOCKED',
    message: expect.stringMatching(new RegExp(`cannot be trusted: .*${why}.*ADMIN_TOKEN was sent nowhere`)),
  });
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  it('names a private, loopback address of this user (the control for the cases below)', async () => {
    const { dir } = await planted('http://127.0.0.1:8080');
    await expect(dataDirHolder(dir)).resolves.toMatchObject({
      kind: 'server',
      pid: 1,
      url: 'http://127.0.0.1:8080',
    });
    const v6 = await planted('http://[::1]:8080');
    await expect(dataDirHolder(v6.dir)).resolves.toMatchObject({ kind: 'server', url: 'http://[::1]:8080' });
  });

  it('refuses an address that is not a literal loopback one (the reported spoof: PID 1 and a foreign host)', async () => {
    for (const url of [
      attacker,
      'http://localhost:8080',
      'http://10.0.0.5:8080',
      'http://127.0.0.1.nip.io:80',
    ]) {
      const { dir, serverFile } = await planted(url);
      await expect(dataDirHolder(dir)).rejects.toMatchObject(
        refused(`${escape(serverFile)} names .*not a loopback address`),
      );
    }
  });

  it('refuses files another user owns or could have written, naming the file and why', async () => {
    const cases: [string, (p: Awaited<ReturnType<typeof planted>>) => Promise<string>][] = [
      [
        'owned-lock',
        async (p) => (
          await fs.chown(p.lockFile, OTHER_UID, OTHER_UID),
          `${p.lockFile} belongs to uid ${OTHER_UID}`
        ),
      ],
      [
        'owned-address',
        async (p) => (
          await fs.chown(p.serverFile, OTHER_UID, OTHER_UID),
          `${p.serverFile} belongs to uid ${OTHER_UID}`
        ),
      ],
      [
        'owned-dir',
        async (p) => (await fs.chown(p.dir, OTHER_UID, OTHER_UID), `${p.dir} belongs to uid ${OTHER_UID}`),
      ],
      [
        'open-address',
        async (p) => (
          await fs.chmod(p.serverFile, 0o644),
          `${p.serverFile} has mode 0644, open to other users`
        ),
      ],
      [
        'writable-lock',
        async (p) => (
          await fs.chmod(p.lockFile, 0o622),
          `${p.lockFile} has mode 0622, writable by other users`
        ),
      ],
      [
        'writable-dir',
        async (p) => (await fs.chmod(p.dir, 0o777), `${p.dir} has mode 0777, writable by other users`),
      ],
      [
        'linked-address',
        async (p) => {
          const elsewhere = `${p.dir}.elsewhere.json`;
          await fs.rename(p.serverFile, elsewhere);
          await fs.symlink(elsewhere, p.serverFile);
          return `${p.serverFile} is a symbolic link`;
        },
      ],
    ];
    // Giving a file to another user needs root (as CI runs); otherwise the mode and link cases
    // run, and 'refuses when the files are not the uid running the command' covers ownership.
    const canChown = process.getuid?.() === 0;
    for (const [name, spoil] of cases.filter(([name]) => canChown || !name.startsWith('owned-'))) {
      const p = await planted('http://127.0.0.1:8080');
      const why = await spoil(p);
      await expect(dataDirHolder(p.dir), name).rejects.toMatchObject(refused(escape(why)));
    }
  });

  it('refuses when the files are not the uid running the command', async () => {
    const { dir } = await planted('http://127.0.0.1:8080');
    const me = process.getuid!();
    await expect(dataDirHolder(dir, { uid: me + 1 })).rejects.toMatchObject(
      refused(`${escape(dir)} belongs to uid ${me}, not to this user \\(uid ${me + 1}\\)`),
    );
  });

  it('names a server that advertised itself through lockDataDir, on a wildcard or localhost listen address', async () => {
    for (const host of ['0.0.0.0', '::', 'localhost', '127.0.0.1']) {
      const dir = await tempDir();
      const lock = await lockDataDir(dir);
      try {
        await advertiseServer(dir, { host, port: 8080 });
        const holder = await dataDirHolder(dir);
        expect(holder, host).toMatchObject({ kind: 'server', pid: process.pid });
      } finally {
        await lock.release();
      }
    }
  });
});
