import type { FastifyInstance } from 'fastify';
import { AGENT_ID, createAgent, listAgents, revokeAgent } from '../../agents/agent-keys.js';
import type { EngineContext } from '../../jobs/context.js';
import { errorBodySchema } from '../error-handler.js';
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

const errors = { '4xx': errorBodySchema, '5xx': errorBodySchema } as const;
const agentId = { type: 'string', pattern: AGENT_ID.source } as const;

/** `agents list|create|revoke` over HTTP (see `adminRoutes`). */
export function adminAgentRoutes(app: FastifyInstance, deps: { engine: EngineContext }): void {
  const ctx = deps.engine;

  app.get(
    '/v1/admin/agents',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            required: ['agents'],
            properties: { agents: { type: 'array', items: agentViewSchema } },
          },
          ...errors,
        },
      },
    },
    async () => ({ agents: (await listAgents(ctx.db)).map(agentView) }),
  );

  app.post<{ Body: { id: string; description?: string } }>(
    '/v1/admin/agents',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['id'],
          properties: { id: agentId, description: { type: 'string', maxLength: MAX_DESCRIPTION } },
        },
        response: {
          201: {
            type: 'object',
            additionalProperties: false,
            required: [...agentViewSchema.required, 'key'],
            // The bearer key, shown this once: only its SHA-256 is stored.
            properties: { ...agentViewSchema.properties, key: { type: 'string' } },
          },
          ...errors,
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
        response: { 200: agentRevokedSchema, ...errors },
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
