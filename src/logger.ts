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
  '*.DATABASE_URL',
  '*.databaseUrl',
  '*.*.token',
  '*.privateKey',
  'privateKey',
  '*.d',
  'jwk.d',
];

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'claw-approvals' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
