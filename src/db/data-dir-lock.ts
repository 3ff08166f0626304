import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AppError } from '../errors.js';

export interface DataDirLock {
  release(): Promise<void>;
}

const LOCK_FILE = 'pglite.lock';
/** Where a server holding the lock says how to reach its admin API (see `advertiseServer`). */
export const SERVER_FILE = 'pglite.server.json';

/**
 * Lock files this process holds, with the content it wrote: our own PID in a lock file is
 * stale unless listed here.
 */
const held = new Map<string, string>();

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

interface Holder {
  pid: number;
  /** Whether it runs on this host (in this PID namespace): only then can it be reached. */
  here: boolean;
  live: boolean;
  who: string;
}

/**
 * Who wrote `content` into the lock `file`, and whether it still holds it. On this host the
 * process table is the truth (our own PID counts only for a lock this process took);
 * elsewhere only the refreshes can tell.
 */
async function holderOf(file: string, content: string): Promise<Holder> {
  const [pidText, owner] = content.split(' ');
  const pid = Number.parseInt(pidText ?? '', 10);
  if (owner !== os.hostname()) {
    const age = await ageMs(file);
    return {
      pid,
      here: false,
      live: !(age !== null && age > LOCK_STALE_MS),
      who: `process ${pidText} on host ${owner ?? '(unknown)'}`,
    };
  }
  const live = pid === process.pid ? held.get(file) === content : pid > 0 && alive(pid);
  return { pid, here: true, live, who: `process ${pid}` };
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
  const file = path.join(dir, LOCK_FILE);
  const guard = `${file}.takeover`;
  if (held.has(file)) throw locked(dir, 'this process');
  const host = os.hostname();
  const token = `${process.pid} ${host} ${randomUUID()}`;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (await createExclusive(file, token)) {
      held.set(file, token);
      // Whoever wrote it is gone (we hold the lock now): its address must not be used.
      await fs.rm(path.join(dir, SERVER_FILE), { force: true });
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
          await withdrawServer(dir, token);
          if ((await readOrNull(file)) === token) await fs.rm(file, { force: true });
        },
      };
    }
    const content = await readOrNull(file);
    if (content === null) continue;
    const holder = await holderOf(file, content);
    if (holder.live) throw locked(dir, holder.who, file);
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

/** Where the admin API of the server holding a data directory listens. */
interface ServerFile {
  /** The lock it was written under: a file left by an earlier holder does not match. */
  lock: string;
  pid: number;
  url: string;
}

/** A listen address as a client on this host reaches it: the wildcard addresses by loopback. */
export function localUrl(listen: { host: string; port: number }): string {
  const host =
    listen.host === '0.0.0.0' || listen.host === '' || listen.host === 'localhost'
      ? '127.0.0.1'
      : listen.host === '::'
        ? '::1'
        : listen.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${listen.port}`;
}

/**
 * `serve` records where it listens, so that a CLI command finding the embedded database held
 * by it can go through its admin API instead. Only the address is written (never a token),
 * mode 0600, tied to this process's lock and removed when the lock is released.
 */
export async function advertiseServer(dir: string, listen: { host: string; port: number }): Promise<void> {
  const lock = held.get(path.join(dir, LOCK_FILE));
  if (lock === undefined) throw new Error(`this process does not hold the lock of ${dir}`);
  const record: ServerFile = { lock, pid: process.pid, url: localUrl(listen) };
  const file = path.join(dir, SERVER_FILE);
  const tmp = `${file}.${randomUUID()}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  try {
    await fs.rename(tmp, file);
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

async function readServerFile(dir: string): Promise<ServerFile | null> {
  const text = await readOrNull(path.join(dir, SERVER_FILE));
  if (text === null) return null;
  try {
    const v = JSON.parse(text) as Partial<ServerFile>;
    if (typeof v.lock !== 'string' || typeof v.pid !== 'number' || typeof v.url !== 'string') return null;
    const url = new URL(v.url);
    // An address, nothing more: no credentials, path or query a client would carry along.
    if (
      url.protocol !== 'http:' ||
      url.username ||
      url.password ||
      url.pathname !== '/' ||
      url.search ||
      url.hash
    )
      return null;
    return { lock: v.lock, pid: v.pid, url: url.origin };
  } catch {
    return null;
  }
}

/** Removes the address file if it was written under `lock` (another holder's is left alone). */
async function withdrawServer(dir: string, lock: string): Promise<void> {
  if ((await readServerFile(dir))?.lock === lock) await fs.rm(path.join(dir, SERVER_FILE), { force: true });
}

export type DataDirHolder =
  /** Nobody holds it, or only a holder that is gone: it can be opened. */
  | { kind: 'free' }
  /** A live holder that cannot be asked (a CLI command, a server still starting, another host). */
  | { kind: 'held'; who: string; lockFile: string }
  /** A live server on this host, whose admin API listens at `url` (a loopback address). */
  | { kind: 'server'; pid: number; url: string; lockFile: string };

/** 127.0.0.0/8 and ::1, written as literal addresses: nothing to resolve, nothing to redirect. */
function isLoopback(hostname: string): boolean {
  if (hostname === '[::1]') return true;
  const v4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(hostname);
  return v4 !== null && v4.slice(1).every((n) => Number(n) <= 255);
}

/**
 * Why `file` cannot be trusted to tell this user where to send ADMIN_TOKEN, or null: it must be
 * what it says (no symbolic link), this user's, and writable by nobody else (`private`: readable
 * by nobody else either).
 */
async function distrust(
  file: string,
  uid: number,
  want: { directory: boolean; private: boolean },
): Promise<string | null> {
  const stat = await fs.lstat(file).catch(() => null);
  if (!stat) return `${file} is gone`;
  if (stat.isSymbolicLink()) return `${file} is a symbolic link`;
  if (want.directory ? !stat.isDirectory() : !stat.isFile())
    return `${file} is not a ${want.directory ? 'directory' : 'regular file'}`;
  if (stat.uid !== uid) return `${file} belongs to uid ${stat.uid}, not to this user (uid ${uid})`;
  const mode = stat.mode & 0o777;
  const octal = mode.toString(8).padStart(4, '0');
  if (want.private && (mode & 0o077) !== 0)
    return `${file} has mode ${octal}, open to other users (it must be 0600)`;
  if ((mode & 0o022) !== 0) return `${file} has mode ${octal}, writable by other users`;
  return null;
}

function untrusted(dir: string, pid: number, why: string): AppError {
  return new AppError(
    'ERR_DB_LOCKED',
    `the embedded database in ${dir} is held by process ${pid}, but where to reach its admin API cannot be trusted: ${why}. ADMIN_TOKEN was sent nowhere. Run the command as the user the server runs as, with DATA_DIR private to that user (chmod 700, files 0600), or stop the server.`,
  );
}

/**
 * Who holds the embedded database in `dir`, judged as `lockDataDir` judges it. A server is
 * named only when the address file was written under the very lock that is held now, by a
 * holder on this host. Since the CLI sends ADMIN_TOKEN there, it must also come from this user:
 * `dir`, the lock file and the address file owned by `uid` and writable by nobody else (the
 * address file 0600), the address a loopback one;
 * otherwise ERR_DB_LOCKED says which and why, and nothing is contacted.
 */
export async function dataDirHolder(dir: string, opts: { uid?: number } = {}): Promise<DataDirHolder> {
  const lockFile = path.join(dir, LOCK_FILE);
  const content = await readOrNull(lockFile);
  if (content === null) return { kind: 'free' };
  const holder = await holderOf(lockFile, content);
  if (!holder.live) return { kind: 'free' };
  const serverFile = path.join(dir, SERVER_FILE);
  if (!holder.here || (await readOrNull(serverFile)) === null)
    return { kind: 'held', who: holder.who, lockFile };
  const uid = opts.uid ?? process.getuid?.();
  if (uid === undefined)
    throw untrusted(dir, holder.pid, 'this platform cannot tell who owns the files there');
  const why =
    (await distrust(dir, uid, { directory: true, private: false })) ??
    (await distrust(lockFile, uid, { directory: false, private: false })) ??
    (await distrust(serverFile, uid, { directory: false, private: true }));
  if (why) throw untrusted(dir, holder.pid, why);
  const server = await readServerFile(dir);
  if (!server || server.lock !== content || server.pid !== holder.pid)
    return { kind: 'held', who: holder.who, lockFile };
  const { hostname } = new URL(server.url);
  if (!isLoopback(hostname))
    throw untrusted(
      dir,
      holder.pid,
      `${serverFile} names ${server.url}, not a loopback address (the CLI sends ADMIN_TOKEN only to 127.0.0.0/8 or ::1; a server listening on one interface only cannot be reached that way)`,
    );
  return { kind: 'server', pid: holder.pid, url: server.url, lockFile };
}
