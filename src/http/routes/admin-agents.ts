import type { FastifyInstance } from 'fastify';
import { AGENT_ID, createAgent, listAgents, revokeAgent } from '../../agents/agent-keys.js';
import type { EngineContext } from '../../jobs/context.js';
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from '../error-handler.js';
import { SECURITY } from '../openapi.js';
import {
  agentRevokedSchema,
  agentRevokedView,
  agentView,
  agentViewSchema,
  checkActor,
  checkText,
  MAX_ADMIN_REASON,
  MAX_DESCRIPTION,
  MAX_RECORDED_ACTOR,
} from './admin-shapes.js';

/** Who every admin route refuses: no or a wrong credential, a spent budget, an agent's key. */
const ADMIN_ERRORS = [...AUTH_ERRORS, 'ERR_FORBIDDEN'] as const;
const agentId = { type: 'string', pattern: AGENT_ID.source } as const;

/** `agents list|create|revoke` over HTTP (see `adminRoutes`). */
export function adminAgentRoutes(app: FastifyInstance, deps: { engine: EngineContext }): void {
  const ctx = deps.engine;

  app.get(
    '/v1/admin/agents',
    {
      schema: {
        operationId: 'listAgents',
        summary: 'Every agent: id, key hint, description, when created and revoked (never a key)',
        tags: ['admin'],
        security: SECURITY.admin,
        response: {
          200: {
            description: 'The agents, oldest first',
            type: 'object',
            additionalProperties: false,
            required: ['agents'],
            properties: { agents: { type: 'array', items: agentViewSchema } },
          },
          ...errorResponses(ADMIN_ERRORS),
        },
      },
    },
    async () => ({ agents: (await listAgents(ctx.db)).map(agentView) }),
  );

  app.post<{ Body: { id: string; description?: string } }>(
    '/v1/admin/agents',
    {
      schema: {
        operationId: 'createAgent',
        summary: 'Create an agent and its bearer key, shown this once',
        description: 'As `claw-approvals agents create`. Only the SHA-256 of the key is stored.',
        tags: ['admin'],
        security: SECURITY.admin,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['id'],
          properties: { id: agentId, description: { type: 'string', maxLength: MAX_DESCRIPTION } },
        },
        response: {
          201: {
            description: 'The agent, with its key',
            type: 'object',
            additionalProperties: false,
            required: [...agentViewSchema.required, 'key'],
            // The bearer key, shown this once: only its SHA-256 is stored.
            properties: { ...agentViewSchema.properties, key: { type: 'string' } },
          },
          ...errorResponses([...ADMIN_ERRORS, ...BODY_ERRORS, 'ERR_AGENT_EXISTS']),
        },
      },
    },
    async (req, reply) => {
      const description = req.body.description ?? '';
      checkText('the description', description, { max: MAX_DESCRIPTION });
      const { agent, key } = await createAgent(ctx.db, { id: req.body.id, description, at: ctx.clock() });
      reply.status(201);
      return { ...agentView(agent), key };
    },
  );

  app.post<{ Body: { id: string; actor: string; reason?: string } }>(
    '/v1/admin/agents/revoke',
    {
      schema: {
        operationId: 'revokeAgent',
        summary: "Revoke an agent's key, its live tokens, and end the open jobs it executes",
        description:
          'As `claw-approvals agents revoke`, recorded as revoked by `admin:<actor>`. Revoking again ' +
          'revokes whatever was left.',
        tags: ['admin'],
        security: SECURITY.admin,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['id', 'actor'],
          properties: {
            id: agentId,
            actor: { type: 'string', minLength: 1, maxLength: MAX_RECORDED_ACTOR },
            reason: { type: 'string', maxLength: MAX_ADMIN_REASON },
          },
        },
        response: {
          200: {
            description: 'The agent revoked, the tokens revoked and the jobs ended',
            ...agentRevokedSchema,
          },
          ...errorResponses([...ADMIN_ERRORS, ...BODY_ERRORS, 'ERR_AGENT_NOT_FOUND']),
        },
      },
    },
    async (req) => {
      const { id, actor, reason } = req.body;
      checkActor(actor, MAX_RECORDED_ACTOR);
      if (reason !== undefined) checkText('the reason', reason, { max: MAX_ADMIN_REASON });
      const r = await revokeAgent(ctx, { id, actor, ...(reason ? { reason } : {}) });
      return agentRevokedView(r);
    },
  );
}
