import fs from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';

export interface DataDirLock {
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Embedded PGlite must never be opened by two processes at once (it would corrupt the
 * data directory). A pid file claims the directory; a stale one left by a dead process
 * is taken over.
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'pglite.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await fs.open(file, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return { release: () => fs.rm(file, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number.parseInt(await fs.readFile(file, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner > 0 && alive(owner)) {
      throw new AppError(
        'ERR_DB_LOCKED',
        `the embedded database in ${dir} is in use by process ${owner}; stop it or set DATABASE_URL to share a PostgreSQL server`,
      );
    }
    await fs.rm(file, { force: true });
  }
  throw new AppError('ERR_DB_LOCKED', `could not lock the embedded database in ${dir}`);
}
