import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../../errors.js';
import type { EngineContext } from '../../jobs/context.js';
import { introspectToken, redeemToken, revokeToken } from '../../tokens/token-lifecycle.js';
import { authenticate } from '../auth.js';
import { errorBodySchema } from '../error-handler.js';

const errors = { '4xx': errorBodySchema, '5xx': errorBodySchema } as const;
const tokenBody = {
  type: 'object',
  additionalProperties: false,
  required: ['token'],
  properties: {
    token: { type: 'string', minLength: 1, maxLength: 4096 },
    audience: { type: 'string', minLength: 1, maxLength: 256 },
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
  const caller = (req: FastifyRequest) =>
    authenticate(req, { db: ctx.db, adminToken: deps.adminToken }, { allowAdmin: true });

  app.post<{ Body: { token: string; audience?: string } }>(
    '/v1/tokens/introspect',
    {
      schema: {
        body: tokenBody,
        response: {
          200: {
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
          ...errors,
        },
      },
    },
    async (req, reply) => {
      await caller(req);
      const r = await introspectToken(
        ctx,
        req.body.token,
        req.body.audience === undefined ? {} : { audience: req.body.audience },
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
        body: tokenBody,
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              redeemed: { type: 'boolean' },
              claims: claimsSchema,
              token_hash: { type: 'string' },
              job_id: { type: 'integer' },
              step: { type: 'string' },
            },
          },
          ...errors,
        },
      },
    },
    async (req) => {
      await caller(req);
      const r = await redeemToken(
        ctx,
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
            type: 'object',
            additionalProperties: false,
            properties: {
              jti: { type: 'string' },
              job_id: { type: 'integer' },
              already_revoked: { type: 'boolean' },
              job_ended: { type: 'boolean' },
            },
          },
          ...errors,
        },
      },
    },
    async (req) => {
      const who = await caller(req);
      const { jti, token_hash: hash, reason } = req.body;
      if ((jti === undefined) === (hash === undefined))
        throw new AppError('ERR_VALIDATION', 'give exactly one of jti and token_hash');
      const r = await revokeToken(ctx, {
        ...(jti === undefined ? {} : { jti }),
        ...(hash === undefined ? {} : { tokenHash: hash }),
        reason,
        actor: who.kind === 'admin' ? { admin: 'api' } : { agentId: who.agent.id },
      });
      return { jti: r.jti, job_id: r.jobId, already_revoked: r.alreadyRevoked, job_ended: r.jobEnded };
    },
  );
}
