/**
 * What a failed database call means for the caller: wait and try again (the server is down,
 * restarting, overloaded, or a transaction lost a race), or never (this input cannot be
 * stored). Decided from SQLSTATE classes and Node socket codes, never from messages alone.
 */

/** SQLSTATE classes and codes that pass: connection, resources, shutdown, serialization. */
// 25006: read-only transaction (a replica promoted, or a primary demoted, during a failover).
const TRANSIENT_SQLSTATE = /^(08|53|57P0[1-4]|40001|40P01|55P03|58030|25006)/;
/** Node and driver codes of a connection that could not be made or was lost. */
const TRANSIENT_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);
/**
 * pg's own errors carry no code: a pool that timed out waiting for a connection, a client
 * whose connection ended. These messages are pg's, stable across its releases.
 */
const TRANSIENT_DRIVER_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed|Cannot use a pool after calling end|connection timeout)/i;

/** SQLSTATE class 22 (data exception) and 54 (program limit): this value can never be stored. */
const UNSTORABLE_SQLSTATE = /^(22|54)/;

function codeOf(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : null;
}

function chain(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e = err, depth = 0; e && depth < 5; depth++) {
    out.push(e);
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

/** The database is unreachable or busy: the same work will succeed later. */
export function isTransientDbError(err: unknown): boolean {
  return chain(err).some((e) => {
    const code = codeOf(e);
    if (code && (TRANSIENT_SQLSTATE.test(code) || TRANSIENT_NODE_CODES.has(code))) return true;
    const message = (e as { message?: unknown }).message;
    return typeof message === 'string' && TRANSIENT_DRIVER_MESSAGES.test(message);
  });
}

/** The input itself cannot be stored (e.g. a NUL byte in text): retrying changes nothing. */
export function isUnstorableInput(err: unknown): boolean {
  return chain(err).some((e) => {
    const code = codeOf(e);
    return code !== null && UNSTORABLE_SQLSTATE.test(code);
  });
}
