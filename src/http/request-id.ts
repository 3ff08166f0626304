import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { EngineContext } from '../jobs/context.js';

export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * An X-Request-Id we adopt: 1 to 128 letters, digits and `. _ : -` (UUIDs, hex ids, ULIDs, most
 * proxies' ids). Anything else (spaces, quotes, control or non-ASCII characters, two headers
 * joined by a comma, longer) is replaced, never echoed or logged, so a client cannot forge or
 * garble log lines with it.
 */
const ADOPTED = /^[A-Za-z0-9._:-]{1,128}$/;

/** fastify's `genReqId`: the caller's X-Request-Id when it is one we adopt, else a random UUID. */
export function requestIdOf(raw: IncomingMessage): string {
  const given = raw.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && ADOPTED.test(given) ? given : randomUUID();
}

/**
 * Every answer that goes through fastify's hooks carries its request's id in X-Request-Id
 * (set first, so a refusal by a later hook keeps it); `frameworkErrors` sets it on the answers
 * fastify gives before routing. A refused id is noted at debug level by its length only.
 */
export function installRequestIds(app: FastifyInstance): void {
  app.addHook('onRequest', async (req, reply) => {
    reply.header(REQUEST_ID_HEADER, req.id);
    const given = req.headers[REQUEST_ID_HEADER];
    if (given !== undefined && given !== req.id)
      req.log.debug(
        { givenLength: Array.isArray(given) ? given.join(', ').length : given.length },
        'X-Request-Id not adopted: 1 to 128 of A-Z a-z 0-9 . _ : - expected',
      );
  });
}

/**
 * The engine as one request uses it: the same state, with a logger that tags every line the
 * engine writes for this request with its id, as fastify tags its own (`reqId`). Work the
 * request only set off (outbox delivery, the bot) keeps its own logger.
 */
export function requestEngine(engine: EngineContext, req: FastifyRequest): EngineContext {
  return { ...engine, log: engine.log.child({ reqId: req.id }) };
}
