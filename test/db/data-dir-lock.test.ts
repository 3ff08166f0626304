import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { LOCK_REFRESH_MS, LOCK_STALE_MS, lockDataDir } from '../../src/db/data-dir-lock.js';

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
