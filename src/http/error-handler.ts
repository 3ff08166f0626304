import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type AppErrorCode, ERROR_STATUS } from '../errors.js';
import { authenticationRefusal } from './auth.js';
import { REQUEST_ID_HEADER } from './request-id.js';

export interface ErrorBody {
  error: { code: AppErrorCode; message: string };
}

function fromFastify(err: FastifyError): AppError | null {
  if (err.validation)
    return new AppError(
      'ERR_VALIDATION',
      `request ${err.validationContext ?? 'input'} ${err.message.replace(/^\S+ /, '')}`,
    );
  switch (err.code) {
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new AppError('ERR_URI_TOO_LONG', 'a path parameter is too long');
    case 'FST_ERR_BAD_URL':
      return new AppError('ERR_BAD_REQUEST', 'malformed URL');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('ERR_PAYLOAD_TOO_LARGE', 'request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('ERR_UNSUPPORTED_MEDIA_TYPE', 'content type must be application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError('ERR_BAD_REQUEST', 'request body is not valid JSON');
    default:
      if (err.statusCode === 429) return new AppError('ERR_RATE_LIMITED', 'too many requests');
      if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
        return new AppError('ERR_BAD_REQUEST', 'bad request');
      return null;
  }
}

/**
 * Errors fastify raises before routing (bad URL, over-long parameter) would otherwise get
 * fastify's own body; pass this as the `frameworkErrors` option to keep one shape.
 */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const known = fromFastify(err) ?? new AppError('ERR_BAD_REQUEST', 'bad request');
  reply
    .header(REQUEST_ID_HEADER, req.id)
    .status(ERROR_STATUS[known.code])
    .send({ error: { code: known.code, message: known.message } } satisfies ErrorBody);
}

/** One error shape for every route: `{error:{code,message}}` with the status from ERROR_STATUS. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler(async (thrown: FastifyError, req, reply) => {
    // A route that authenticates alongside its work: a caller who is not authenticated is
    // refused as such, whatever else went wrong first (a malformed body, say).
    const err = ((await authenticationRefusal(req)) as FastifyError | null) ?? thrown;
    // Refused before its body was read whole (a 415, a caller refused while sending it): the
    // connection is not kept alive, or the unread rest would hold up the next request on it.
    if (req.raw.complete === false) reply.header('connection', 'close');
    const known = err instanceof AppError ? err : fromFastify(err);
    if (!known) {
      req.log.error({ err }, 'unhandled error');
      return reply
        .status(500)
        .send({ error: { code: 'ERR_INTERNAL', message: 'internal error' } } satisfies ErrorBody);
    }
    const status = ERROR_STATUS[known.code];
    if (status >= 500) req.log.error({ err: known, code: known.code }, 'request failed');
    else req.log.info({ code: known.code }, 'request refused');
    return reply
      .status(status)
      .send({ error: { code: known.code, message: known.message } } satisfies ErrorBody);
  });
  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send({
      error: { code: 'ERR_NOT_FOUND', message: `no route for ${req.method} ${req.url.split('?')[0]}` },
    } satisfies ErrorBody);
  });
}

/** JSON schema of the error body, for route response declarations. */
export const errorBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

/** Codes every route may answer, besides its own. */
const ANY_ROUTE: readonly AppErrorCode[] = ['ERR_INTERNAL'];

/**
 * The error answers of a route, for its response schema: one entry per HTTP status, whose body
 * is the error shape with `code` listing the codes answered with that status (in ERROR_STATUS)
 * and the description naming them. ERR_INTERNAL is always included.
 */
export function errorResponses(codes: readonly AppErrorCode[]) {
  const byStatus = new Map<number, Set<AppErrorCode>>();
  for (const code of [...codes, ...ANY_ROUTE]) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, (byStatus.get(status) ?? new Set()).add(code));
  }
  const responses: Record<string, object> = {};
  for (const [status, set] of [...byStatus].sort(([a], [b]) => a - b)) {
    const list = [...set].sort();
    responses[String(status)] = {
      description: list.join(', '),
      ...errorBodySchema,
      properties: {
        error: {
          ...errorBodySchema.properties.error,
          properties: { code: { type: 'string', enum: list }, message: { type: 'string' } },
        },
      },
    };
  }
  return responses;
}

/** What every route that takes a JSON body may be refused with before its handler runs. */
export const BODY_ERRORS: readonly AppErrorCode[] = [
  'ERR_VALIDATION',
  'ERR_BAD_REQUEST',
  'ERR_PAYLOAD_TOO_LARGE',
  'ERR_UNSUPPORTED_MEDIA_TYPE',
];
/** A route with path parameters: a malformed or over-long one. */
export const PARAM_ERRORS: readonly AppErrorCode[] = ['ERR_VALIDATION', 'ERR_URI_TOO_LONG'];
/** A route behind `authenticationHook`: no or a wrong credential, or a budget spent. */
export const AUTH_ERRORS: readonly AppErrorCode[] = ['ERR_UNAUTHENTICATED', 'ERR_RATE_LIMITED'];
