import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../jobs/context.js';
import { MAX_REASON, setPaused } from '../../jobs/kill-switch.js';
import { errorBodySchema } from '../error-handler.js';
import {
  checkActor,
  checkText,
  MAX_RECORDED_ACTOR,
  pauseChangeSchema,
  pauseChangeView,
} from './admin-shapes.js';

const errors = { '4xx': errorBodySchema, '5xx': errorBodySchema } as const;

/**
 * `pause` / `resume` over HTTP (see `adminRoutes`): as `POST /v1/admin/pause|resume`, but
 * recorded as `admin:<actor>` with the actor the caller names (the CLI names `cli:<operator>`)
 * rather than `admin:api`.
 */
export function adminKillSwitchRoutes(app: FastifyInstance, deps: { engine: EngineContext }): void {
  const ctx = deps.engine;
  app.post<{ Body: { paused: boolean; actor: string; reason?: string } }>(
    '/v1/admin/kill-switch',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['paused', 'actor'],
          properties: {
            paused: { type: 'boolean' },
            actor: { type: 'string', minLength: 1, maxLength: MAX_RECORDED_ACTOR },
            reason: { type: 'string', maxLength: MAX_REASON },
          },
        },
        response: { 200: pauseChangeSchema, ...errors },
      },
    },
    async (req) => {
      const { paused, actor, reason = '' } = req.body;
      checkActor(actor, MAX_RECORDED_ACTOR);
      checkText('the reason', reason, { max: MAX_REASON });
      const change = await setPaused(ctx, { paused, actor: { kind: 'admin', via: actor }, reason });
      return pauseChangeView(change);
    },
  );
}
