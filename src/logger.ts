import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from './config.js';

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

/** Shorter secrets are not censored by value: replacing them would garble every line. */
const MIN_CENSORED_LENGTH = 4;

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
  const censored = [...new Set(secrets)]
    .filter((s) => s.length >= MIN_CENSORED_LENGTH)
    .flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]);
  return pino(
    {
      level,
      base: { service: 'claw-approvals' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      ...(censored.length > 0
        ? {
            hooks: {
              streamWrite: (line: string) => censored.reduce((l, s) => l.replaceAll(s, '[redacted]'), line),
            },
          }
        : {}),
    },
    destination,
  );
}
