/** An answer to a GET, or why there was none. Headers (and so the token) are never kept. */
export type HttpAnswer = { ok: true; status: number; body: unknown } | { ok: false; error: unknown };

export type Fetch = typeof fetch;

/** Every request the doctor makes gives up after this long. */
const DOCTOR_TIMEOUT_MS = 10_000;

/** GET `url`, JSON decoded when it is JSON (anything else kept as at most 200 characters of text). */
export async function httpGet(
  url: URL,
  opts: { token?: string; fetch?: Fetch; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  try {
    const res = await (opts.fetch ?? fetch)(url, {
      headers: {
        accept: 'application/json',
        'user-agent': 'claw-approvals-doctor',
        ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      },
      redirect: 'manual',
      signal: AbortSignal.timeout(opts.timeoutMs ?? DOCTOR_TIMEOUT_MS),
    });
    const text = await res.text();
    let body: unknown = text.trim().slice(0, 200);
    if ((res.headers.get('content-type') ?? '').includes('json')) {
      try {
        body = JSON.parse(text);
      } catch {
        // Not the JSON it claims to be: the text is what we show.
      }
    }
    return { ok: true, status: res.status, body };
  } catch (error) {
    return { ok: false, error };
  }
}

/** Mattermost's error message in an answer, if it has one. */
export function serverMessage(body: unknown): string {
  if (typeof body === 'object' && body !== null) {
    const message = (body as { message?: unknown }).message;
    if (typeof message === 'string' && message) return message.slice(0, 200);
  }
  return typeof body === 'string' ? body : '';
}
