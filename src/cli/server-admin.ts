import { dataDirHolder } from '../db/data-dir-lock.js';
import { AppError, type AppErrorCode, ERROR_STATUS } from '../errors.js';
import type { Runtime } from '../runtime.js';
import type { CliContext } from './context.js';

/** How long a command waits for the server's answer before it gives up. */
export const ADMIN_TIMEOUT_MS = 30_000;

/** The admin API of the server that holds the embedded database. */
export interface AdminApi {
  url: string;
  get<T>(route: string): Promise<T>;
  post<T>(route: string, body: unknown): Promise<T>;
}

const isKnownCode = (code: unknown): code is AppErrorCode =>
  typeof code === 'string' && Object.hasOwn(ERROR_STATUS, code);

/** Errors the request never left this machine with: nothing can have changed. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

function causeCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

function adminClient(server: { url: string; pid: number; lockFile: string }, token: string): AdminApi {
  const call = async <T>(method: 'GET' | 'POST', route: string, body?: unknown): Promise<T> => {
    let res: Response;
    try {
      res = await fetch(`${server.url}${route}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        redirect: 'error',
        signal: AbortSignal.timeout(ADMIN_TIMEOUT_MS),
      });
    } catch (err) {
      const code = causeCode(err);
      const timedOut = (err as Error)?.name === 'TimeoutError';
      const why = timedOut ? `no answer within ${ADMIN_TIMEOUT_MS / 1000} s` : (code ?? 'connection failed');
      const outcome =
        method === 'GET' || (code !== undefined && NOT_SENT.has(code))
          ? 'nothing was changed'
          : 'the change may or may not have been made: check before trying again';
      throw new AppError(
        'ERR_DB_LOCKED',
        `the embedded database is held by a running server (process ${server.pid}), but its admin API at ${server.url} could not be reached (${why}); ${outcome}. If no server runs any more, remove ${server.lockFile}.`,
        { cause: err },
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (res.ok && parsed !== undefined) return parsed as T;
    if (res.status === 401)
      throw new AppError(
        'ERR_UNAUTHENTICATED',
        `the running server at ${server.url} refused this ADMIN_TOKEN: set it to the value the server runs with (a server started without ADMIN_TOKEN refuses every token)`,
      );
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    if (isKnownCode(error?.code) && typeof error.message === 'string')
      throw new AppError(error.code, error.message);
    throw new AppError('ERR_INTERNAL', `the running server at ${server.url} answered HTTP ${res.status}`);
  };
  return {
    url: server.url,
    get: (route) => call('GET', route),
    post: (route, body) => call('POST', route, body),
  };
}

/**
 * The running server holding the embedded database, when the CLI must go through it: never
 * with DATABASE_URL (PostgreSQL is shared), nor when the lock is free or its holder is gone.
 * A live server on this host is used only with ADMIN_TOKEN.
 */
export async function serverHoldingDatabase(ctx: CliContext, command: string): Promise<AdminApi | null> {
  const config = ctx.config();
  if (config.databaseUrl) return null;
  const holder = await dataDirHolder(config.dataDir);
  if (holder.kind !== 'server') return null;
  if (!config.adminToken)
    throw new AppError(
      'ERR_DB_LOCKED',
      `the embedded database in ${config.dataDir} is held by the running server (process ${holder.pid}, ${holder.url}); \`${command}\` goes through its admin API, which needs ADMIN_TOKEN set to the server's value. Set it, or stop the server.`,
    );
  return adminClient(holder, config.adminToken);
}

/**
 * Runs a command on the database itself or, while `serve` holds the embedded database,
 * through its admin API. Both give the same view, which the command renders: the output
 * does not depend on the path.
 */
export async function onDatabaseOrServer<T>(
  ctx: CliContext,
  command: string,
  paths: { database: (rt: Runtime) => Promise<T>; server: (api: AdminApi) => Promise<T> },
): Promise<T> {
  const api = await serverHoldingDatabase(ctx, command);
  return api ? paths.server(api) : ctx.withRuntime(paths.database);
}
