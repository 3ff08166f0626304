import { PGlite } from '@electric-sql/pglite';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';

/** Every line the logger writes, as text. */
function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { lines, log: createLogger('info', stream) };
}

const TOKEN = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudDpvcHMifQ.c2lnbmF0dXJlLW9mLWEtY3N0';

describe('logging a database error', () => {
  it("never writes the failed statement's parameters, however deep the error", async () => {
    const pg = await PGlite.create();
    try {
      await pg.exec('create table tokens (compact text primary key)');
      await pg.query('insert into tokens (compact) values ($1)', [TOKEN]);
      const failure = await pg.query('insert into tokens (compact) values ($1)', [TOKEN]).then(
        () => null,
        (err: unknown) => err as Error,
      );
      expect(failure, 'PGlite refuses the duplicate').toBeInstanceOf(Error);
      expect(JSON.stringify((failure as unknown as { params: unknown }).params)).toContain(TOKEN);

      const { lines, log } = capture();
      log.error({ err: failure }, 'unhandled error');
      log.error({ error: failure }, 'as error');
      log.error({ err: new Error('outer', { cause: failure }) }, 'wrapped');
      expect(lines).toHaveLength(3);
      for (const line of lines) {
        expect(line).not.toContain(TOKEN);
        expect(line).toContain('duplicate key');
      }
      expect(JSON.parse(lines[0]!).err.params).toBe('[redacted]');
    } finally {
      await pg.close();
    }
  });

  it('keeps the rest of an ordinary error as pino writes it', () => {
    const { lines, log } = capture();
    log.error({ err: Object.assign(new Error('boom'), { code: 'E1' }) }, 'failed');
    const err = JSON.parse(lines[0]!).err;
    expect(err).toMatchObject({ type: 'Error', message: 'boom', code: 'E1' });
    expect(err.stack).toContain('boom');
  });
});
