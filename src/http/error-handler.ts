import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type AppErrorCode, ERROR_STATUS } from '../errors.js';

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
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const known = fromFastify(err) ?? new AppError('ERR_BAD_REQUEST', 'bad request');
  reply
    .status(ERROR_STATUS[known.code])
    .send({ error: { code: known.code, message: known.message } } satisfies ErrorBody);
}

/** One error shape for every route: `{error:{code,message}}` with the status from ERROR_STATUS. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
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
