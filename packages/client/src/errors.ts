/**
 * The server's error codes (`src/errors.ts`, `ERROR_STATUS`), as the API answers them in
 * `{"error":{"code","message"}}`. A test keeps this list equal to the server's.
 */
export const API_ERROR_CODES = [
  'ERR_CONFIG_INVALID',
  'ERR_DB_UNAVAILABLE',
  'ERR_DB_LOCKED',
  'ERR_MIGRATION_FAILED',
  'ERR_KEY_UNREADABLE',
  'ERR_KEY_INVALID',
  'ERR_KEY_PERMISSIONS',
  'ERR_POLICY_UNREADABLE',
  'ERR_POLICY_INVALID',
  'ERR_POLICY_NOT_FOUND',
  'ERR_POLICY_CONFLICT',
  'ERR_WPC_HASH_MALFORMED',
  'ERR_WPC_NOT_FOUND',
  'ERR_WPC_CORRUPTED',
  'ERR_VALIDATION',
  'ERR_BAD_REQUEST',
  'ERR_PAYLOAD_TOO_LARGE',
  'ERR_URI_TOO_LONG',
  'ERR_UNSUPPORTED_MEDIA_TYPE',
  'ERR_NOT_FOUND',
  'ERR_RATE_LIMITED',
  'ERR_INTERNAL',
  'ERR_UNAUTHENTICATED',
  'ERR_FORBIDDEN',
  'ERR_AGENT_EXISTS',
  'ERR_AGENT_NOT_FOUND',
  'ERR_CHANNEL_CLOSED',
  'ERR_NOT_A_REQUESTER',
  'ERR_PLAN_INVALID',
  'ERR_PLAN_DENIED',
  'ERR_JOB_NOT_FOUND',
  'ERR_STEP_NOT_FOUND',
  'ERR_JOB_CLOSED',
  'ERR_JOB_EXPIRED',
  'ERR_JOB_REVOKED',
  'ERR_STEP_STATE',
  'ERR_RECEIPTS_REQUIRED',
  'ERR_POLICY_UNAVAILABLE',
  'ERR_DIRECTORY_UNAVAILABLE',
  'ERR_PAUSED',
  'ERR_WRONG_THREAD',
  'ERR_REQUESTER_UNCONFIRMED',
  'ERR_NOT_THE_REQUESTER',
  'ERR_NOTHING_TO_CONFIRM',
  'ERR_ALREADY_CONFIRMED',
  'ERR_REQUESTER_DEACTIVATED',
  'ERR_NOT_ELIGIBLE',
  'ERR_SELF_APPROVAL',
  'ERR_DUPLICATE_APPROVAL',
  'ERR_STEP_NOT_GATED',
  'ERR_STEP_DECIDED',
  'ERR_POST_ALREADY_DECIDED',
  'ERR_STEP_RULE_MISMATCH',
  'ERR_APPROVER_DEACTIVATED',
  'ERR_TOKEN_INVALID',
  'ERR_TOKEN_EXPIRED',
  'ERR_TOKEN_REVOKED',
  'ERR_TOKEN_REPLAYED',
  'ERR_TOKEN_ALREADY_CLAIMED',
  'ERR_TOKEN_NOT_FOUND',
  'ERR_BUNDLE_NOT_FOUND',
  'ERR_BUNDLE_INVALID',
] as const;

export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

/**
 * A well-formed code this client does not list (a newer server's), kept as the server sent it.
 * Branded so that the listed codes still narrow and complete.
 */
export type UnlistedErrorCode = string & { readonly __unlistedErrorCode: true };

/**
 * `ERR_BAD_RESPONSE`: the server (or something in front of it) answered, but not with the
 * API's JSON: an HTML 502 from a proxy, a body that is not JSON.
 */
export type ClawApiErrorCode = ApiErrorCode | 'ERR_BAD_RESPONSE' | UnlistedErrorCode;

/** `ERR_UNREACHABLE`: no answer at all (network failure or timeout). */
export type ClawErrorCode = ClawApiErrorCode | 'ERR_UNREACHABLE';

const LISTED: ReadonlySet<string> = new Set(API_ERROR_CODES);
const CODE_SHAPE = /^ERR_[A-Z0-9_]{1,64}$/;

/** The code of an error body as the client types it. */
export function apiErrorCode(raw: unknown): ClawApiErrorCode {
  if (typeof raw !== 'string' || !CODE_SHAPE.test(raw)) return 'ERR_BAD_RESPONSE';
  return LISTED.has(raw) ? (raw as ApiErrorCode) : (raw as UnlistedErrorCode);
}

/** Base of the client's errors: branch on `code`, never on `message`. */
export abstract class ClawError extends Error {
  abstract readonly code: ClawErrorCode;
}

/** The API answered with a non-2xx status (or 2xx with a body that is not the API's). */
export class ClawApiError extends ClawError {
  override readonly name = 'ClawApiError';
  readonly code: ClawApiErrorCode;
  readonly status: number;
  /** With 429 `ERR_RATE_LIMITED`: the server's `Retry-After`, in seconds. */
  readonly retryAfterSeconds: number | undefined;
  /** `METHOD /path` of the request (no query string, no credentials). */
  readonly request: string;

  constructor(input: {
    status: number;
    code: ClawApiErrorCode;
    message: string;
    request: string;
    retryAfterSeconds?: number;
  }) {
    super(input.message);
    this.status = input.status;
    this.code = input.code;
    this.request = input.request;
    this.retryAfterSeconds = input.retryAfterSeconds;
  }
}

/**
 * No answer from the server: connection refused, DNS, TLS, reset, or no answer within the
 * client's timeout. Nothing is known about what the server did, so callers fail closed.
 */
export class ClawUnreachableError extends ClawError {
  override readonly name = 'ClawUnreachableError';
  readonly code = 'ERR_UNREACHABLE' as const;
  readonly reason: 'network' | 'timeout';
  readonly request: string;

  constructor(input: { reason: 'network' | 'timeout'; request: string; detail: string; cause?: unknown }) {
    super(
      `claw-approvals unreachable: ${input.request} ${input.reason === 'timeout' ? 'timed out' : 'failed'} (${input.detail})`,
      input.cause === undefined ? undefined : { cause: input.cause },
    );
    this.reason = input.reason;
    this.request = input.request;
  }
}

/** Whether `err` is one of the client's errors, with `code` when given. */
export function isClawError(err: unknown): err is ClawApiError | ClawUnreachableError;
export function isClawError(err: unknown, code: 'ERR_UNREACHABLE'): err is ClawUnreachableError;
export function isClawError<C extends ClawApiErrorCode>(
  err: unknown,
  code: C,
): err is ClawApiError & { readonly code: C };
export function isClawError(err: unknown, code?: ClawErrorCode): boolean {
  return (
    (err instanceof ClawApiError || err instanceof ClawUnreachableError) &&
    (code === undefined || err.code === code)
  );
}
