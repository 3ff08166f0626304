import { decisionOf } from './decision.js';
import { apiErrorCode, ClawApiError, ClawUnreachableError, isClawError } from './errors.js';
import { type ClientOperation, CLIENT_ROUTES } from './routes.js';
import type {
  ClaimedToken,
  ClosedJob,
  Decision,
  Introspection,
  JobRef,
  JobView,
  Redemption,
  ReportedResult,
  RevokeTarget,
  Revocation,
  StepResult,
  SubmitJobRequest,
} from './types.js';

export const CLIENT_VERSION = '0.1.0';

/** The server answers a long-poll after at most this many seconds. */
export const MAX_WAIT_SECONDS = 30;

export interface ClawClientOptions {
  /** Where the server is, e.g. `https://claw.example.com` (a path prefix is kept). */
  baseUrl: string;
  /** The bearer key from `claw-approvals agents create`. */
  agentKey: string;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /** How long one request may take, on top of any long-poll wait. Default 15 000 ms. */
  timeoutMs?: number;
  /** Sent as `User-Agent` (browsers may ignore it). Default `claw-approvals-client/<version>`. */
  userAgent?: string;
}

export interface CallOptions {
  /** Aborting rejects the call with the signal's reason (not a `ClawUnreachableError`). */
  signal?: AbortSignal;
}

export interface WaitOptions extends CallOptions {
  /** Long-poll: answer once the job changes, or after this many seconds (0–30). */
  waitSeconds?: number;
}

export interface GetJobOptions extends WaitOptions {
  /** With `waitSeconds`: wait for a version newer than this one (a view's `version`). */
  afterVersion?: number;
}

export interface WaitForDecisionOptions extends CallOptions {
  /** Give up waiting (answer `pending`) after this long. Default 300 000 ms; 0 looks once. */
  timeoutMs?: number;
}

interface Call {
  id?: string;
  step?: string;
  query?: Record<string, string>;
  body?: unknown;
  waitSeconds?: number;
  signal?: AbortSignal | undefined;
  /** Credentials in this request besides the agent key, kept out of error messages. */
  secrets?: string[];
}

const JOB_NUMBER = /^[1-9][0-9]{0,15}$/;
const STEP_ID = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
// As the server reads `Authorization: Bearer <key>`.
const AGENT_KEY = /^[\x21-\x7e]{1,512}$/;

function jobNumber(ref: JobRef): string {
  const raw = typeof ref === 'object' && ref !== null ? ref.job_id : ref;
  const text =
    typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.replace(/^job:/, '') : '';
  if (!JOB_NUMBER.test(text)) throw new TypeError('job must be a job id such as 12 or "job:12"');
  return text;
}

function stepId(step: string): string {
  if (typeof step !== 'string' || !STEP_ID.test(step))
    throw new TypeError('step must be a step id: a-z, 0-9, "_", "." or "-", at most 64 characters');
  return step;
}

function waitSeconds(value: number | undefined): number {
  const wait = value ?? 0;
  if (!Number.isInteger(wait) || wait < 0 || wait > MAX_WAIT_SECONDS)
    throw new RangeError(`waitSeconds must be an integer from 0 to ${MAX_WAIT_SECONDS}`);
  return wait;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `Retry-After` as seconds: a number of seconds or an HTTP date. */
function retryAfter(header: string | null): number | undefined {
  if (header === null) return undefined;
  if (/^\d{1,9}$/.test(header.trim())) return Number(header.trim());
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** What failed, in words that hold no request data: the system error code when there is one. */
function networkDetail(err: unknown): string {
  const cause = isObject(err) ? err.cause : undefined;
  for (const e of [cause, err]) {
    if (isObject(e) && typeof e.code === 'string' && /^[A-Z0-9_]{1,40}$/.test(e.code)) return e.code;
  }
  return err instanceof Error ? err.name : 'unknown error';
}

/**
 * A client of the claw-approvals agent API. Every non-2xx answer rejects with `ClawApiError`
 * (`status`, `code`); no answer at all rejects with `ClawUnreachableError`. Nothing is retried
 * on its own (a claim is once only), except that `waitForDecision` waits out a 429.
 */
export class ClawClient {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  // Private fields: neither util.inspect nor JSON.stringify shows them.
  readonly #agentKey: string;
  readonly #fetch: typeof fetch;
  readonly #userAgent: string;

  constructor(options: ClawClientOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new TypeError('baseUrl must be an absolute http(s) URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new TypeError('baseUrl must be an absolute http(s) URL');
    if (url.username || url.password || url.search || url.hash)
      throw new TypeError('baseUrl must not carry credentials, a query or a fragment');
    if (typeof options.agentKey !== 'string' || !AGENT_KEY.test(options.agentKey))
      throw new TypeError('agentKey must be 1–512 printable ASCII characters without spaces');
    const timeoutMs = options.timeoutMs ?? 15_000;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
      throw new RangeError('timeoutMs must be a positive integer');
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.timeoutMs = timeoutMs;
    this.#agentKey = options.agentKey;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#userAgent = options.userAgent ?? `claw-approvals-client/${CLIENT_VERSION}`;
  }

  /** `POST /v1/jobs`: the job as created (201). */
  async submitJob(request: SubmitJobRequest, options: CallOptions = {}): Promise<JobView> {
    return this.#call('submitJob', { body: request, signal: options.signal });
  }

  /** `GET /v1/jobs/:id`; with `waitSeconds`, once its version passes `afterVersion` (or now's). */
  async getJob(job: JobRef, options: GetJobOptions = {}): Promise<JobView> {
    const wait = waitSeconds(options.waitSeconds);
    const after = options.afterVersion;
    if (after !== undefined && (!Number.isSafeInteger(after) || after < 0))
      throw new RangeError('afterVersion must be a non-negative integer');
    return this.#call('getJob', {
      id: jobNumber(job),
      query: {
        ...(wait > 0 ? { wait: String(wait) } : {}),
        ...(wait > 0 && after !== undefined ? { after: String(after) } : {}),
      },
      waitSeconds: wait,
      signal: options.signal,
    });
  }

  /** `GET /v1/jobs?ready=1`: your open jobs with a claimable step; long-polls while there are none. */
  async readyJobs(options: WaitOptions = {}): Promise<JobView[]> {
    const wait = waitSeconds(options.waitSeconds);
    const answer = await this.#call<{ jobs?: JobView[] }>('readyJobs', {
      query: { ready: '1', ...(wait > 0 ? { wait: String(wait) } : {}) },
      waitSeconds: wait,
      signal: options.signal,
    });
    return answer.jobs ?? [];
  }

  /**
   * Long-polls the job until `step` leaves awaiting approval (or its job ends), or until
   * `timeoutMs` passes: then the outcome is `pending`. Rejects with `ClawApiError`
   * `ERR_STEP_NOT_FOUND` when the job has no such step.
   */
  async waitForDecision(job: JobRef, step: string, options: WaitForDecisionOptions = {}): Promise<Decision> {
    const id = jobNumber(job);
    stepId(step);
    const timeoutMs = options.timeoutMs ?? 300_000;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0)
      throw new RangeError('timeoutMs must be a non-negative integer');
    const { signal } = options;
    const deadline = Date.now() + timeoutMs;
    let view: JobView | undefined;
    for (;;) {
      const left = deadline - Date.now();
      try {
        if (view === undefined || left < 1000) {
          // Under a second left: sleep it out, then look once more without waiting.
          if (view !== undefined && left > 0) await sleep(left, signal);
          view = await this.getJob(id, { signal });
        } else {
          const waitFor = Math.min(MAX_WAIT_SECONDS, Math.floor(left / 1000));
          view = await this.getJob(id, { waitSeconds: waitFor, afterVersion: view.version, signal });
        }
      } catch (err) {
        // Over the budget: wait as the server says (within the time left), then ask again.
        if (!isClawError(err, 'ERR_RATE_LIMITED')) throw err;
        const rest = deadline - Date.now();
        if (rest <= 0) {
          if (view === undefined) throw err;
          return this.#pending(view, step);
        }
        await sleep(Math.min(rest, (err.retryAfterSeconds ?? 1) * 1000), signal);
        continue;
      }
      const decided = this.#decided(view, step);
      if (decided) return decided;
      if (Date.now() >= deadline) return this.#pending(view, step);
    }
  }

  /** `POST /v1/jobs/:id/steps/:step/token`: the step's CST, once. Keep `token` secret. */
  async claimToken(job: JobRef, step: string, options: CallOptions = {}): Promise<ClaimedToken> {
    return this.#call('claimToken', {
      id: jobNumber(job),
      step: stepId(step),
      body: {},
      signal: options.signal,
    });
  }

  /** `POST /v1/tokens/introspect`: whether the token is active, without using it. */
  async introspect(token: string, audience?: string, options: CallOptions = {}): Promise<Introspection> {
    return this.#call('introspect', {
      body: { token, ...(audience === undefined ? {} : { audience }) },
      secrets: [token],
      signal: options.signal,
    });
  }

  /** `POST /v1/tokens/redeem`: uses the token up; a second redeem is 409 `ERR_TOKEN_REPLAYED`. */
  async redeem(token: string, audience?: string, options: CallOptions = {}): Promise<Redemption> {
    return this.#call('redeem', {
      body: { token, ...(audience === undefined ? {} : { audience }) },
      secrets: [token],
      signal: options.signal,
    });
  }

  /** `POST /v1/tokens/revoke`: one of your tokens, by `jti` or `token_hash`. */
  async revokeToken(target: RevokeTarget, reason: string, options: CallOptions = {}): Promise<Revocation> {
    return this.#call('revokeToken', {
      body: {
        ...(target.jti === undefined ? {} : { jti: target.jti }),
        ...(target.token_hash === undefined ? {} : { token_hash: target.token_hash }),
        reason,
      },
      signal: options.signal,
    });
  }

  /** `POST /v1/jobs/:id/steps/:step/result`: what running the step did, with gateway receipts. */
  async reportResult(
    job: JobRef,
    step: string,
    result: StepResult,
    options: CallOptions = {},
  ): Promise<ReportedResult> {
    return this.#call('reportResult', {
      id: jobNumber(job),
      step: stepId(step),
      body: {
        status: result.status,
        ...(result.summary === undefined ? {} : { summary: result.summary }),
        ...(result.receipts === undefined ? {} : { receipts: result.receipts }),
      },
      signal: options.signal,
    });
  }

  /** `POST /v1/jobs/:id/close`: ends the job now and seals its bundle. */
  async closeJob(job: JobRef, reason?: string, options: CallOptions = {}): Promise<ClosedJob> {
    return this.#call('closeJob', {
      id: jobNumber(job),
      body: reason === undefined ? {} : { reason },
      signal: options.signal,
    });
  }

  #decided(view: JobView, step: string): Decision | undefined {
    const decision = decisionOf(view, step);
    if (!decision)
      throw new ClawApiError({
        status: 404,
        code: 'ERR_STEP_NOT_FOUND',
        message: `${view.id} has no step ${step}`,
        request: `GET /v1/jobs/${view.job_id}`,
      });
    return decision.outcome === 'pending' ? undefined : decision;
  }

  #pending(view: JobView, step: string): Decision {
    return decisionOf(view, step)!;
  }

  /** Removes the agent key and the call's own credentials from text the server sent. */
  #scrub(text: string, secrets: readonly string[]): string {
    let out = text;
    for (const s of [this.#agentKey, ...secrets]) if (s.length >= 8) out = out.split(s).join('[redacted]');
    return out;
  }

  async #call<T>(operation: ClientOperation, call: Call): Promise<T> {
    const route = CLIENT_ROUTES[operation];
    const path = route.path
      .replace('{id}', call.id ?? '')
      .replace('{step}', encodeURIComponent(call.step ?? ''));
    const request = `${route.method} ${path}`;
    const query = new URLSearchParams(call.query ?? {}).toString();
    const timeoutMs = this.timeoutMs + (call.waitSeconds ?? 0) * 1000;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = call.signal ? AbortSignal.any([call.signal, timeout]) : timeout;
    const secrets = call.secrets ?? [];
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(`${this.baseUrl}${path}${query ? `?${query}` : ''}`, {
        method: route.method,
        headers: {
          accept: 'application/json',
          authorization: `Bearer ${this.#agentKey}`,
          'user-agent': this.#userAgent,
          ...(call.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
        // A redirect would carry the key (and a token in the body) somewhere else.
        redirect: 'manual',
        signal,
      });
      text = await res.text();
    } catch (err) {
      if (call.signal?.aborted) throw call.signal.reason;
      if (timeout.aborted)
        throw new ClawUnreachableError({
          reason: 'timeout',
          request,
          detail: `no answer within ${timeoutMs} ms`,
        });
      throw new ClawUnreachableError({ reason: 'network', request, detail: networkDetail(err), cause: err });
    }
    const status = res.status;
    const bad = (message: string) =>
      new ClawApiError({ status, code: 'ERR_BAD_RESPONSE', message: `${request}: ${message}`, request });
    if (res.type === 'opaqueredirect' || (status >= 300 && status < 400))
      throw bad(`answered with a redirect (HTTP ${status}); the client does not follow redirects`);
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (status >= 200 && status < 300) {
      if (!isObject(body)) throw bad(`answered HTTP ${status} without a JSON object`);
      return body as T;
    }
    const error = isObject(body) && isObject(body.error) ? body.error : undefined;
    const code = apiErrorCode(error?.code);
    if (!error || code === 'ERR_BAD_RESPONSE' || typeof error.message !== 'string')
      throw bad(`answered HTTP ${status} without an API error body`);
    throw new ClawApiError({
      status,
      code,
      message: this.#scrub(error.message, secrets).slice(0, 2000),
      request,
      ...(status === 429 ? { retryAfterSeconds: retryAfter(res.headers.get('retry-after')) ?? 1 } : {}),
    });
  }
}
