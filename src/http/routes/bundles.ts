import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/database.js';
import { AppError } from '../../errors.js';

export const BUNDLE_ID = /^pb_[A-Za-z0-9_-]{22,64}$/;

/**
 * `GET /v1/bundles/:id`: the sealed envelope, byte for byte as stored. Deliberately no
 * response schema: a serializer would re-order keys and the payload hash is over the
 * stored order. The id carries 128 random bits; the link is the capability the bot posts
 * in the job's thread, so no shared cache keeps it and no page it opens learns it.
 */
export function bundleRoutes(app: FastifyInstance, deps: { db: Db }): void {
  app.get<{ Params: { id: string } }>(
    '/v1/bundles/:id',
    {
      schema: {
        params: {
          type: 'object',
          required: ['id'],
          additionalProperties: false,
          properties: { id: { type: 'string', maxLength: 80 } },
        },
      },
    },
    async (req, reply) => {
      if (!BUNDLE_ID.test(req.params.id)) throw new AppError('ERR_BUNDLE_NOT_FOUND', 'no such bundle');
      const row = await deps.db
        .selectFrom('bundles')
        .select('envelope')
        .where('bundle_id', '=', req.params.id)
        .executeTakeFirst();
      if (!row) throw new AppError('ERR_BUNDLE_NOT_FOUND', 'no such bundle');
      reply.headers({
        'cache-control': 'private, max-age=31536000, immutable',
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'x-robots-tag': 'noindex',
      });
      reply.type('application/json; charset=utf-8');
      return reply.send(row.envelope);
    },
  );
}
