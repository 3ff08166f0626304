import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from './config.js';
import { isAppError } from './errors.js';

const SERVICE = 'claw-approvals';

/**
 * Paths that may carry secrets anywhere they are logged. Log calls put data in fields, so
 * redaction by path covers them; messages are constant strings.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'token',
  'password',
  '*.token',
  '*.password',
  '*.authorization',
  '*.MATTERMOST_TOKEN',
  '*.ADMIN_TOKEN',
  '*.SIGNING_KEY_JWK',
  'DATABASE_URL',
  'databaseUrl',
  'connectionString',
  '*.DATABASE_URL',
  '*.databaseUrl',
  '*.connectionString',
  '*.*.token',
  '*.privateKey',
  'privateKey',
  '*.d',
  'jwk.d',
];

/**
 * Fields of a database error that repeat the values of the failed statement, which may be a token
 * being stored: PGlite's `params` (the values bound), and PostgreSQL's `detail` (`Key (c)=(…)
 * already exists`, `Failing row contains (…)`, the whole row). Never logged, at any depth of
 * `cause`; the message, code, constraint, table and column stay.
 */
const STATEMENT_FIELDS = ['params', 'parameters', 'queryOptions', 'detail'];

type SerializedError = Record<string, unknown>;

function withoutStatementValues(serialized: unknown, seen = new Set<unknown>()): unknown {
  if (typeof serialized !== 'object' || serialized === null || seen.has(serialized)) return serialized;
  seen.add(serialized);
  const out: SerializedError = { ...(serialized as SerializedError) };
  for (const field of STATEMENT_FIELDS) if (field in out) out[field] = '[redacted]';
  if ('cause' in out) out.cause = withoutStatementValues(out.cause, seen);
  if (Array.isArray(out.aggregateErrors))
    out.aggregateErrors = out.aggregateErrors.map((e) => withoutStatementValues(e, seen));
  return out;
}

/** pino's error serializer, then the statement's values taken out. */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return withoutStatementValues(err);
  return withoutStatementValues(pino.stdSerializers.err(err));
}

/** Shorter secrets are not censored by value: replacing them would garble every line. */
const MIN_CENSORED_LENGTH = 4;

/** Replaces each secret, as written and as escaped inside a JSON string, in a finished line. */
function censorer(secrets: readonly string[]): ((line: string) => string) | null {
  const censored = [...new Set(secrets)]
    .filter((s) => s.length >= MIN_CENSORED_LENGTH)
    .flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]);
  if (censored.length === 0) return null;
  return (line) => censored.reduce((l, s) => l.replaceAll(s, '[redacted]'), line);
}

/**
 * `secrets` are the configured secret values (database password, tokens): besides the
 * redacted paths, any line that would repeat one verbatim (say, inside a driver's error
 * message) has it replaced before it is written.
 */
export function createLogger(
  level: LogLevel,
  destination?: DestinationStream,
  secrets: readonly string[] = [],
): Logger {
  const censor = censorer(secrets);
  return pino(
    {
      level,
      base: { service: SERVICE },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: { err: serializeError, error: serializeError },
      timestamp: pino.stdTimeFunctions.isoTime,
      ...(censor ? { hooks: { streamWrite: censor } } : {}),
    },
    destination,
  );
}

/** pino's number for `fatal`, so the line reads like every other log line. */
const FATAL = 60;

/**
 * The one line `serve` writes to stderr when it cannot start (bad configuration, database
 * unreachable, data directory locked, key unreadable, port taken): a JSON log line at level
 * fatal whose `error` has the shape of the API's errors, `{code, message}`, plus the problems
 * of an invalid configuration (`details`: key and problem, never a value). Configured secrets
 * are censored as in every log line; an error that is not ours is ERR_INTERNAL with its message.
 */
export function fatalLine(err: unknown, opts: { secrets?: readonly string[]; now?: Date } = {}): string {
  const error = isAppError(err)
    ? {
        code: err.code,
        message: err.message,
        ...(err.code === 'ERR_CONFIG_INVALID' && Array.isArray(err.details) ? { details: err.details } : {}),
      }
    : { code: 'ERR_INTERNAL', message: err instanceof Error ? err.message : String(err) };
  const line = JSON.stringify({
    level: FATAL,
    time: (opts.now ?? new Date()).toISOString(),
    service: SERVICE,
    msg: 'start-up failed',
    error,
  });
  const censor = censorer(opts.secrets ?? []);
  return censor ? censor(line) : line;
}
