import fs from 'node:fs/promises';
import { AppError, type AppErrorCode } from '../errors.js';

/**
 * Reading what a reviewer points `bundle verify` at: a local file or an http(s) URL, with the
 * same limits either way. A URL is fetched with no credentials, in bounded time and size, and
 * followed only to the same origin. Errors name the problem (DNS, TLS, refused, HTTP status),
 * never a secret: a URL is shown without its query and credentials are refused outright.
 */
export interface SourceLimits {
  timeoutMs: number;
  maxBytes: number;
  maxRedirects: number;
}

export const SOURCE_LIMITS: SourceLimits = { timeoutMs: 15_000, maxBytes: 16 * 1024 * 1024, maxRedirects: 3 };

export interface ReadSpec {
  /** What is read, for messages: `bundle`, `JWKS`. */
  what: string;
  /** The `Accept` header sent with a URL. */
  accept: string;
  /** The error code when the source cannot be read (not found, unreachable, refused). */
  failure: AppErrorCode;
  limits?: Partial<SourceLimits>;
}

export interface SourceText {
  text: string;
  /** How the source is shown in output: a file path, or a URL without its query. */
  shown: string;
  /** The URL as given, when the source is one. */
  url: URL | null;
  /** The response's Content-Type, for a URL. */
  contentType: string | null;
}

/** `http(s)://…` as a URL; null when the argument is not a URL at all (a path, an id). */
export function httpUrl(arg: string, what: string): URL | null {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(arg)) return null;
  let url: URL;
  try {
    url = new URL(arg);
  } catch {
    throw new AppError('ERR_VALIDATION', `the ${what} URL is not a valid URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new AppError('ERR_VALIDATION', `the ${what} URL must be http(s), not ${url.protocol}`);
  // Credentials in a URL would be sent on and end up in logs and shell history; never echoed.
  if (url.username || url.password)
    throw new AppError('ERR_VALIDATION', `the ${what} URL carries credentials: refused (they are not shown)`);
  return url;
}

/** A URL as output shows it: no query (it may carry a token) and no fragment. */
export function shownUrl(url: URL): string {
  return `${url.origin}${url.pathname}${url.search ? '?…' : ''}`;
}

/** Reads `arg` as a URL when it is one, else as a file. */
export async function readSource(arg: string, spec: ReadSpec): Promise<SourceText> {
  const url = httpUrl(arg, spec.what);
  return url ? fetchSource(url, spec) : readFileSource(arg, spec);
}

export async function readFileSource(file: string, spec: ReadSpec): Promise<SourceText> {
  const { maxBytes } = { ...SOURCE_LIMITS, ...spec.limits };
  let text: string;
  try {
    const handle = await fs.open(file, 'r');
    try {
      if ((await handle.stat()).size > maxBytes) throw tooLarge(spec, file, maxBytes);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new AppError(spec.failure, `${spec.what} file ${file} cannot be read (${code ?? 'error'})`, {
      cause: err,
    });
  }
  return { text, shown: file, url: null, contentType: null };
}

export async function fetchSource(url: URL, spec: ReadSpec): Promise<SourceText> {
  const limits = { ...SOURCE_LIMITS, ...spec.limits };
  const shown = shownUrl(url);
  const fail = (problem: string, cause?: unknown) =>
    new AppError(spec.failure, `${spec.what} ${shown}: ${problem}`, { cause });
  const signal = AbortSignal.timeout(limits.timeoutMs);
  let current = url;
  try {
    for (let hops = 0; ; hops += 1) {
      const res = await fetch(current, {
        headers: { accept: spec.accept },
        redirect: 'manual',
        signal,
      });
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel();
        const next = redirectTarget(res, current);
        if (!next) throw fail(`HTTP ${res.status} without a usable Location`);
        // Another origin answers for the link in the thread: for a JWKS that would hand trust to
        // whoever runs it. Refused for bundles too; a reviewer who trusts that host fetches it directly.
        if (next.origin !== url.origin)
          throw fail(
            `redirects to another origin (${next.origin}): refused; fetch that URL directly if you trust it`,
          );
        if (hops >= limits.maxRedirects) throw fail(`more than ${limits.maxRedirects} redirects`);
        current = next;
        continue;
      }
      if (res.status === 404) {
        await res.body?.cancel();
        throw fail('not found (HTTP 404)');
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw fail(`the server answered HTTP ${res.status}`);
      }
      const text = await readBody(res, limits.maxBytes, () => tooLarge(spec, shown, limits.maxBytes), fail);
      return { text, shown, url, contentType: res.headers.get('content-type') };
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw fail(networkProblem(err, current, limits.timeoutMs), err);
  }
}

function redirectTarget(res: Response, from: URL): URL | null {
  const location = res.headers.get('location');
  if (!location) return null;
  try {
    return new URL(location, from);
  } catch {
    return null;
  }
}

async function readBody(
  res: Response,
  maxBytes: number,
  tooBig: () => AppError,
  fail: (problem: string) => AppError,
): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw tooBig();
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw tooBig();
    }
    chunks.push(value);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw fail('the answer is not UTF-8 text');
  }
}

function tooLarge(spec: ReadSpec, shown: string, maxBytes: number): AppError {
  return new AppError(
    'ERR_PAYLOAD_TOO_LARGE',
    `${spec.what} ${shown} is larger than ${maxBytes / (1024 * 1024)} MB: refused`,
  );
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'EPROTO',
]);

/** What went wrong on the network, by error code only (messages may quote more than we want shown). */
function networkProblem(err: unknown, url: URL, timeoutMs: number): string {
  if ((err as Error | undefined)?.name === 'TimeoutError')
    return `no complete answer within ${timeoutMs / 1000} s`;
  const raw = (err as { cause?: { code?: unknown } }).cause?.code ?? (err as { code?: unknown }).code;
  const code = typeof raw === 'string' && /^[A-Z0-9_]{1,64}$/.test(raw) ? raw : null;
  const host = url.host;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve host ${url.hostname} (${code})`;
  if (code === 'ECONNREFUSED') return `connection refused by ${host}`;
  if (code && (/^(ERR_TLS_|ERR_SSL_|CERT_)/.test(code) || TLS_CODES.has(code)))
    return `TLS with ${host} failed (${code})`;
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE')
    return `${host} closed the connection`;
  return `cannot be fetched (${code ?? 'network error'})`;
}
