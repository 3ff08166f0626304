import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../../errors.js';
import type { EngineContext } from '../../jobs/context.js';
import { introspectToken, redeemToken, revokeToken } from '../../tokens/token-lifecycle.js';
import { alongsideAuthentication, authenticate } from '../auth.js';
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from '../error-handler.js';
import { SECURITY } from '../openapi.js';
import { requestEngine } from '../request-id.js';

const tokenBody = {
  type: 'object',
  additionalProperties: false,
  required: ['token'],
  properties: {
    token: { type: 'string', minLength: 1, maxLength: 4096, description: 'The CST (compact JWS)' },
    audience: {
      type: 'string',
      minLength: 1,
      maxLength: 256,
      description: "Checked against the token's `aud` when given",
    },
  },
} as const;
const claimsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    token_version: { type: 'string' },
    sub: { type: 'string' },
    aud: { type: 'string' },
    scope: { type: 'array', items: { type: 'string' } },
    iat: { type: 'integer' },
    exp: { type: 'integer' },
    jti: { type: 'string' },
    nonce: { type: 'string' },
    mission_id: { type: 'string' },
    policy_hash_b64u: { type: 'string' },
    token_scope_hash_b64u: { type: 'string' },
  },
} as const;

/** Token routes for gateways and agents (or ADMIN_TOKEN); the app rate limits them per caller. */
export function tokenRoutes(
  app: FastifyInstance,
  deps: { engine: EngineContext; adminToken: string | null },
): void {
  const ctx = deps.engine;
  const auth = { db: ctx.db, adminToken: deps.adminToken };
  const caller = (req: FastifyRequest) => authenticate(req, auth, { allowAdmin: true });

  app.post<{ Body: { token: string; audience?: string } }>(
    '/v1/tokens/introspect',
    {
      // The key's lookup overlaps the check's own read and signature verification: the check
      // changes nothing, and its answer waits for the caller to be authenticated.
      config: { authenticatesAlongside: true },
      schema: {
        operationId: 'introspectToken',
        summary: 'The full check of a CST, without spending it',
        description:
          'A token that fails a check is a 200 with `active: false` and its code (`ERR_TOKEN_INVALID`, ' +
          '`ERR_TOKEN_EXPIRED`, `ERR_TOKEN_REVOKED`, `ERR_TOKEN_REPLAYED`, `ERR_TOKEN_NOT_FOUND`, `ERR_JOB_CLOSED`, ' +
          '`ERR_PAUSED`).',
        tags: ['tokens'],
        security: SECURITY.agentOrAdmin,
        body: tokenBody,
        response: {
          200: {
            description:
              '`{active:true, claims, token_hash, job_id, step}` or `{active:false, code, message}`',
            type: 'object',
            additionalProperties: false,
            required: ['active'],
            properties: {
              active: { type: 'boolean' },
              code: { type: 'string' },
              message: { type: 'string' },
              claims: claimsSchema,
              token_hash: { type: 'string' },
              job_id: { type: 'integer' },
              step: { type: 'string' },
            },
          },
          ...errorResponses([...AUTH_ERRORS, ...BODY_ERRORS]),
        },
      },
    },
    async (req, reply) => {
      const { result: r } = await alongsideAuthentication(req, auth, { allowAdmin: true }, () =>
        introspectToken(
          requestEngine(ctx, req),
          req.body.token,
          req.body.audience === undefined ? {} : { audience: req.body.audience },
        ),
      );
      reply.header('cache-control', 'no-store');
      return r.active
        ? { active: true, claims: r.claims, token_hash: r.tokenHash, job_id: r.jobId, step: r.step }
        : { active: false, code: r.code, message: r.message };
    },
  );

  app.post<{ Body: { token: string; audience?: string } }>(
    '/v1/tokens/redeem',
    {
      schema: {
        operationId: 'redeemToken',
        summary: 'Spend a CST: the first redemption succeeds, any later one is 409 ERR_TOKEN_REPLAYED',
        tags: ['tokens'],
        security: SECURITY.agentOrAdmin,
        body: tokenBody,
        response: {
          200: {
            description: 'Redeemed: the claims the gateway may act on',
            type: 'object',
            additionalProperties: false,
            required: ['redeemed', 'claims', 'token_hash', 'job_id', 'step'],
            properties: {
              redeemed: { type: 'boolean' },
              claims: claimsSchema,
              token_hash: { type: 'string' },
              job_id: { type: 'integer' },
              step: { type: 'string' },
            },
          },
          ...errorResponses([
            ...AUTH_ERRORS,
            ...BODY_ERRORS,
            'ERR_TOKEN_INVALID',
            'ERR_TOKEN_EXPIRED',
            'ERR_TOKEN_REVOKED',
            'ERR_TOKEN_NOT_FOUND',
            'ERR_TOKEN_REPLAYED',
            'ERR_JOB_CLOSED',
            'ERR_PAUSED',
          ]),
        },
      },
    },
    async (req) => {
      await caller(req);
      const r = await redeemToken(
        requestEngine(ctx, req),
        req.body.token,
        req.body.audience === undefined ? {} : { audience: req.body.audience },
      );
      return { redeemed: true, claims: r.claims, token_hash: r.tokenHash, job_id: r.jobId, step: r.step };
    },
  );

  app.post<{ Body: { jti?: string; token_hash?: string; reason: string } }>(
    '/v1/tokens/revoke',
    {
      schema: {
        operationId: 'revokeToken',
        summary: 'Revoke one CST by `jti` or `token_hash` (exactly one)',
        description:
          'An agent its own tokens, ADMIN_TOKEN any. If its step had not finished, the job ends as revoked and ' +
          'its bundle is sealed.',
        tags: ['tokens'],
        security: SECURITY.agentOrAdmin,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['reason'],
          properties: {
            jti: { type: 'string', pattern: '^[0-9a-f-]{36}$' },
            token_hash: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
            reason: { type: 'string', minLength: 1, maxLength: 500 },
          },
        },
        response: {
          200: {
            description: 'Revoked (or it already was)',
            type: 'object',
            additionalProperties: false,
            required: ['jti', 'job_id', 'already_revoked', 'job_ended'],
            properties: {
              jti: { type: 'string' },
              job_id: { type: 'integer' },
              already_revoked: { type: 'boolean' },
              job_ended: { type: 'boolean' },
            },
          },
          ...errorResponses([...AUTH_ERRORS, ...BODY_ERRORS, 'ERR_TOKEN_NOT_FOUND']),
        },
      },
    },
    async (req) => {
      const who = await caller(req);
      const { jti, token_hash: hash, reason } = req.body;
      if ((jti === undefined) === (hash === undefined))
        throw new AppError('ERR_VALIDATION', 'give exactly one of jti and token_hash');
      const r = await revokeToken(requestEngine(ctx, req), {
        ...(jti === undefined ? {} : { jti }),
        ...(hash === undefined ? {} : { tokenHash: hash }),
        reason,
        actor: who.kind === 'admin' ? { admin: 'api' } : { agentId: who.agent.id },
      });
      return { jti: r.jti, job_id: r.jobId, already_revoked: r.alreadyRevoked, job_ended: r.jobEnded };
    },
  );
}
