import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';

export interface DataDirLock {
  release(): Promise<void>;
}

/** Lock files this process holds: the same PID in a lock file is stale unless listed here. */
const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOrNull(file: string): Promise<string | null> {
  return fs.readFile(file, 'utf8').catch(() => null);
}

function locked(dir: string, owner: string): AppError {
  return new AppError(
    'ERR_DB_LOCKED',
    `the embedded database in ${dir} is in use by ${owner}; stop it or set DATABASE_URL to share a PostgreSQL server`,
  );
}

/**
 * Embedded PGlite must never be opened by two processes at once (it would corrupt the data
 * directory). A lock file holding "<pid>:<token>" claims the directory. It is created with
 * link(), which fails if the file exists; a stale lock (dead process, or our own PID left by
 * an earlier incarnation, as with PID 1 in a container) is first renamed aside, which only
 * one racer can do, and checked to be the one judged stale before it is discarded.
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  // The embedded database files inherit the umask; keep the whole directory private.
  await fs.chmod(dir, 0o700);
  const file = path.join(dir, 'pglite.lock');
  if (held.has(file)) throw locked(dir, 'this process');
  const token = `${process.pid}:${randomUUID()}`;
  for (let attempt = 0; attempt < 5; attempt++) {
    const tmp = `${file}.${randomUUID()}.tmp`;
    await fs.writeFile(tmp, token, { mode: 0o600 });
    try {
      await fs.link(tmp, file);
      held.add(file);
      return {
        release: async () => {
          held.delete(file);
          if ((await readOrNull(file)) === token) await fs.rm(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await fs.rm(tmp, { force: true });
    }
    const content = await readOrNull(file);
    if (content === null) continue;
    const pid = Number.parseInt(content, 10);
    const stale = !(pid > 0) || !alive(pid) || pid === process.pid;
    if (!stale) throw locked(dir, `process ${pid}`);
    const aside = `${file}.stale.${randomUUID()}`;
    try {
      await fs.rename(file, aside);
    } catch {
      continue;
    }
    if ((await readOrNull(aside)) !== content) {
      // Another starter replaced the stale lock with its own before our rename: give it back.
      await fs.link(aside, file).catch(() => {});
      await fs.rm(aside, { force: true });
      throw locked(dir, 'another starting process');
    }
    await fs.rm(aside, { force: true });
  }
  throw locked(dir, 'another process (could not take the lock)');
}
