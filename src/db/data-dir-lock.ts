import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AppError } from '../errors.js';

export interface DataDirLock {
  release(): Promise<void>;
}

/** Lock files this process holds: our own PID in a lock file is stale unless listed here. */
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

/** The holder refreshes the lock file this often; a lock not refreshed for STALE_MS is abandoned. */
export const LOCK_REFRESH_MS = 10_000;
export const LOCK_STALE_MS = 6 * LOCK_REFRESH_MS;

function locked(dir: string, owner: string, file?: string): AppError {
  const recover = file
    ? ` If nothing runs there any more (a container that crashed), the lock frees itself ${LOCK_STALE_MS / 1000} s after its last refresh, or remove ${file} by hand.`
    : '';
  return new AppError(
    'ERR_DB_LOCKED',
    `the embedded database in ${dir} is in use by ${owner}; stop it or set DATABASE_URL to share a PostgreSQL server.${recover}`,
  );
}

async function ageMs(file: string): Promise<number | null> {
  const stat = await fs.stat(file).catch(() => null);
  return stat ? Date.now() - stat.mtimeMs : null;
}

/** Creates `file` holding `content` only if it does not exist (link() is atomic). */
async function createExclusive(file: string, content: string): Promise<boolean> {
  const tmp = `${file}.${randomUUID()}.tmp`;
  await fs.writeFile(tmp, content, { mode: 0o600 });
  try {
    await fs.link(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/**
 * Embedded PGlite must never be opened by two processes at once (it would corrupt the data
 * directory). The lock file holds "<pid> <host> <token>", and its holder refreshes its mtime
 * every LOCK_REFRESH_MS. A lock taken on this host is stale when its process is gone (or is our
 * own PID, left by an earlier incarnation, as with PID 1 in a container); a lock from another
 * host or PID namespace is stale only when nobody refreshed it for LOCK_STALE_MS (a crashed
 * container whose volume is mounted again). Until then the error names the file to remove. Removing a stale lock happens under a second, exclusive "takeover"
 * file, after re-reading that the lock is still the stale one, so racing starters cannot
 * both win.
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  // The embedded database files inherit the umask; keep the whole directory private.
  await fs.chmod(dir, 0o700);
  const file = path.join(dir, 'pglite.lock');
  const guard = `${file}.takeover`;
  if (held.has(file)) throw locked(dir, 'this process');
  const host = os.hostname();
  const token = `${process.pid} ${host} ${randomUUID()}`;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (await createExclusive(file, token)) {
      held.add(file);
      // The holder keeps the lock fresh: a lock nobody refreshes was left by a process that is gone,
      // even one on another host (a crashed container whose data volume is mounted again).
      const refresh = setInterval(() => {
        const now = new Date();
        fs.utimes(file, now, now).catch(() => {});
      }, LOCK_REFRESH_MS);
      refresh.unref();
      return {
        release: async () => {
          clearInterval(refresh);
          held.delete(file);
          if ((await readOrNull(file)) === token) await fs.rm(file, { force: true });
        },
      };
    }
    const content = await readOrNull(file);
    if (content === null) continue;
    const [pidText, owner] = content.split(' ');
    const pid = Number.parseInt(pidText ?? '', 10);
    const age = await ageMs(file);
    const abandoned = age !== null && age > LOCK_STALE_MS;
    if (owner !== host && !abandoned)
      throw locked(dir, `process ${pidText} on host ${owner ?? '(unknown)'}`, file);
    // On this host the process table is the truth; elsewhere only the refreshes can tell.
    if (owner === host && pid > 0 && pid !== process.pid && alive(pid))
      throw locked(dir, `process ${pid}`, file);
    if (!(await createExclusive(guard, token))) {
      throw locked(
        dir,
        `another process taking over a stale lock (if none is starting, a crash left ${guard}: remove it)`,
      );
    }
    try {
      if ((await readOrNull(file)) === content) await fs.rm(file, { force: true });
    } finally {
      await fs.rm(guard, { force: true });
    }
  }
  throw locked(dir, 'another process (could not take the lock)');
}
