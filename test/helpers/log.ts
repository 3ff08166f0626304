import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createLogger } from '../../src/logger.js';

/** A real logger whose output is kept, so tests can assert what was (and was not) logged. */
export function captureLogger(level: 'info' | 'debug' | 'trace' = 'info'): {
  log: Logger;
  lines: () => string[];
  text: () => string;
} {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const log = createLogger(level, stream);
  const text = () => chunks.join('');
  return { log, text, lines: () => text().split('\n').filter(Boolean) };
}

export const silentLogger = (): Logger => createLogger('silent');
