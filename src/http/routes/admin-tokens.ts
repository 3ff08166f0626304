import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../jobs/context.js';
import { revokeToken } from '../../tokens/token-lifecycle.js';
import { errorBodySchema } from '../error-handler.js';
import {
  checkActor,
  checkText,
  checkTokenRef,
  JTI,
  MAX_ADMIN_REASON,
  MAX_RECORDED_ACTOR,
  TOKEN_HASH,
  tokenRevokedSchema,
  tokenRevokedView,
} from './admin-shapes.js';

const errors = { '4xx': errorBodySchema, '5xx': errorBodySchema } as const;

/**
 * `token revoke` over HTTP (see `adminRoutes`): as `POST /v1/tokens/revoke` with ADMIN_TOKEN,
 * but recorded as revoked by the operator the caller names rather than by `admin:api`.
 */
export function adminTokenRoutes(app: FastifyInstance, deps: { engine: EngineContext }): void {
  const ctx = deps.engine;
  app.post<{ Body: { jti?: string; token_hash?: string; actor: string; reason: string } }>(
    '/v1/admin/tokens/revoke',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['actor', 'reason'],
          properties: {
            jti: { type: 'string', pattern: JTI.source },
            token_hash: { type: 'string', pattern: TOKEN_HASH.source },
            actor: { type: 'string', minLength: 1, maxLength: MAX_RECORDED_ACTOR },
            reason: { type: 'string', minLength: 1, maxLength: MAX_ADMIN_REASON },
          },
        },
        response: { 200: tokenRevokedSchema, ...errors },
      },
    },
    async (req) => {
      const { jti, token_hash: tokenHash, actor, reason } = req.body;
      checkTokenRef({ jti, tokenHash });
      checkActor(actor, MAX_RECORDED_ACTOR);
      checkText('the reason', reason, { max: MAX_ADMIN_REASON, required: true });
      const r = await revokeToken(ctx, {
        ...(jti === undefined ? {} : { jti }),
        ...(tokenHash === undefined ? {} : { tokenHash }),
        reason,
        actor: { admin: actor },
      });
      return tokenRevokedView(r);
    },
  );
}
