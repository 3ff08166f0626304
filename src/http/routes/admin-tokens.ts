import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../jobs/context.js';
import { revokeToken } from '../../tokens/token-lifecycle.js';
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from '../error-handler.js';
import { SECURITY } from '../openapi.js';
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

/** Who every admin route refuses: no or a wrong credential, a spent budget, an agent's key. */
const ADMIN_ERRORS = [...AUTH_ERRORS, 'ERR_FORBIDDEN'] as const;

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
        operationId: 'adminRevokeToken',
        summary: 'Revoke one CST by `jti` or `token_hash` (exactly one), recorded as done by the actor named',
        description:
          'As `claw-approvals token revoke`. If its step had not finished, the job ends as revoked and its ' +
          'bundle is sealed.',
        tags: ['admin'],
        security: SECURITY.admin,
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
        response: {
          200: { description: 'Revoked (or it already was)', ...tokenRevokedSchema },
          ...errorResponses([...ADMIN_ERRORS, ...BODY_ERRORS, 'ERR_TOKEN_NOT_FOUND']),
        },
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
