/**
 * A failed call to the chat server, classified for retrying. Mattermost answers errors as JSON
 * `{id, message, detailed_error, request_id, status_code}`, except its rate limiter, which
 * answers 429 in plain text with `Retry-After` / `X-Ratelimit-Reset` (seconds).
 */
export type ChatErrorKind =
  'network' | 'rate_limited' | 'unavailable' | 'unauthorized' | 'forbidden' | 'not_found' | 'rejected';

export class ChatError extends Error {
  constructor(
    readonly kind: ChatErrorKind,
    message: string,
    readonly status: number | null = null,
    /** Server-advised wait (429), in milliseconds. */
    readonly retryAfterMs: number | null = null,
    /** Mattermost's error id, e.g. `api.context.session_expired.app_error`. */
    readonly serverErrorId: string | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ChatError';
  }

  /** Worth trying again later: the server was busy, down or unreachable. */
  get retryable(): boolean {
    return this.kind === 'network' || this.kind === 'rate_limited' || this.kind === 'unavailable';
  }
}

function seconds(value: string | undefined | null): number | null {
  if (!value || !/^\d{1,6}(\.\d+)?$/.test(value.trim())) return null;
  return Math.ceil(Number(value) * 1000);
}

/** Classifies a non-2xx response from its status, headers and (already decoded) body. */
export function chatErrorFrom(
  status: number,
  header: (name: string) => string | null,
  body: unknown,
): ChatError {
  const json = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : null;
  const serverId = typeof json?.id === 'string' ? json.id : null;
  const text =
    typeof json?.message === 'string' && json.message
      ? json.message
      : typeof body === 'string' && body.trim()
        ? body.trim().slice(0, 200)
        : `HTTP ${status}`;
  if (status === 429) {
    const wait = seconds(header('retry-after')) ?? seconds(header('x-ratelimit-reset'));
    return new ChatError('rate_limited', `rate limited by Mattermost: ${text}`, status, wait, serverId);
  }
  if (status >= 500)
    return new ChatError('unavailable', `Mattermost error ${status}: ${text}`, status, null, serverId);
  if (status === 401)
    return new ChatError(
      'unauthorized',
      `Mattermost rejected the bot token: ${text}`,
      status,
      null,
      serverId,
    );
  if (status === 403)
    return new ChatError('forbidden', `Mattermost refused: ${text}`, status, null, serverId);
  if (status === 404) return new ChatError('not_found', `not found: ${text}`, status, null, serverId);
  return new ChatError(
    'rejected',
    `Mattermost rejected the request (${status}): ${text}`,
    status,
    null,
    serverId,
  );
}

/** Failures that prove a request never left this machine: nothing it asked can have been done. */
const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Whether a failed request may still take effect on the server: no answer came (a timeout, a
 * connection cut after sending), or something other than Mattermost answered 5xx (a proxy that
 * gave up waiting for it, or lost it after passing the request on: 502, 504, an ingress's 503),
 * while Mattermost may still be working on it. False when Mattermost itself answered (its errors
 * carry its error id; its rate limiter's 429 comes before any work), or when the request provably
 * never left (refused connection, unknown host).
 */
export function mayStillLand(err: unknown): boolean {
  if (err instanceof ChatError && err.status !== null) {
    if (err.status === 502 || err.status === 504) return true;
    return err.status >= 500 && err.serverErrorId === null;
  }
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NEVER_SENT.has(code)) return false;
    e = (e as { cause?: unknown }).cause;
  }
  return true;
}

/** Capped exponential backoff with full jitter in [d/2, d]. */
export function backoffMs(attempt: number, minMs: number, maxMs: number, random = Math.random): number {
  const d = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return Math.round(d / 2 + (random() * d) / 2);
}
