/**
 * Stable error codes. Callers branch on `code`, never on `message`.
 * HTTP status for each code lives in one table so routes never choose their own.
 */
export const ERROR_STATUS = {
  ERR_CONFIG_INVALID: 500,
  ERR_DB_UNAVAILABLE: 503,
  ERR_DB_LOCKED: 503,
  ERR_MIGRATION_FAILED: 500,
  ERR_KEY_UNREADABLE: 500,
  ERR_KEY_INVALID: 500,
  ERR_KEY_PERMISSIONS: 500,
  ERR_POLICY_UNREADABLE: 400,
  ERR_POLICY_INVALID: 400,
  ERR_POLICY_NOT_FOUND: 404,
  ERR_POLICY_CONFLICT: 409,
  ERR_WPC_HASH_MALFORMED: 400,
  ERR_WPC_NOT_FOUND: 404,
  ERR_WPC_CORRUPTED: 500,
  ERR_VALIDATION: 400,
  ERR_BAD_REQUEST: 400,
  ERR_PAYLOAD_TOO_LARGE: 413,
  ERR_URI_TOO_LONG: 414,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_NOT_FOUND: 404,
  ERR_RATE_LIMITED: 429,
  ERR_INTERNAL: 500,
  // Agents and callers
  ERR_UNAUTHENTICATED: 401,
  ERR_FORBIDDEN: 403,
  ERR_AGENT_EXISTS: 409,
  ERR_AGENT_NOT_FOUND: 404,
  // Jobs and plans
  ERR_CHANNEL_CLOSED: 403,
  ERR_NOT_A_REQUESTER: 403,
  ERR_PLAN_INVALID: 400,
  ERR_PLAN_DENIED: 422,
  ERR_JOB_NOT_FOUND: 404,
  ERR_STEP_NOT_FOUND: 404,
  ERR_JOB_CLOSED: 409,
  ERR_JOB_EXPIRED: 409,
  ERR_JOB_REVOKED: 409,
  ERR_STEP_STATE: 409,
  ERR_RECEIPTS_REQUIRED: 422,
  ERR_POLICY_UNAVAILABLE: 503,
  ERR_DIRECTORY_UNAVAILABLE: 503,
  /** The kill switch is on: nothing new is requested, approved, minted or claimed. */
  ERR_PAUSED: 503,
  // Approvals (recorded as decision reason codes; HTTP status when surfaced over the API)
  ERR_WRONG_THREAD: 409,
  ERR_REQUESTER_UNCONFIRMED: 409,
  ERR_NOT_THE_REQUESTER: 403,
  ERR_NOTHING_TO_CONFIRM: 409,
  ERR_ALREADY_CONFIRMED: 409,
  ERR_REQUESTER_DEACTIVATED: 403,
  ERR_NOT_ELIGIBLE: 403,
  ERR_SELF_APPROVAL: 403,
  ERR_DUPLICATE_APPROVAL: 409,
  ERR_STEP_NOT_GATED: 409,
  ERR_STEP_DECIDED: 409,
  ERR_POST_ALREADY_DECIDED: 409,
  ERR_STEP_RULE_MISMATCH: 409,
  ERR_APPROVER_DEACTIVATED: 403,
  // Tokens
  ERR_TOKEN_INVALID: 401,
  ERR_TOKEN_EXPIRED: 401,
  ERR_TOKEN_REVOKED: 401,
  ERR_TOKEN_REPLAYED: 409,
  ERR_TOKEN_ALREADY_CLAIMED: 409,
  ERR_TOKEN_NOT_FOUND: 404,
  // Bundles
  ERR_BUNDLE_NOT_FOUND: 404,
  ERR_BUNDLE_INVALID: 422,
} as const;

export type AppErrorCode = keyof typeof ERROR_STATUS;

export interface AppErrorOptions {
  cause?: unknown;
  /** Structured detail safe to show to the caller (never secrets). */
  details?: unknown;
}

export class AppError extends Error {
  readonly code: AppErrorCode;
  readonly details: unknown;

  constructor(code: AppErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = options.details;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export function isAppError(err: unknown, code?: AppErrorCode): err is AppError {
  return err instanceof AppError && (code === undefined || err.code === code);
}
