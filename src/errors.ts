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
