import type { FastifyInstance } from 'fastify';
import type { EngineContext } from '../../jobs/context.js';
import { MAX_REASON, setPaused } from '../../jobs/kill-switch.js';
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from '../error-handler.js';
import { SECURITY } from '../openapi.js';
import {
  checkActor,
  checkText,
  MAX_RECORDED_ACTOR,
  pauseChangeSchema,
  pauseChangeView,
} from './admin-shapes.js';

/** Who every admin route refuses: no or a wrong credential, a spent budget, an agent's key. */
const ADMIN_ERRORS = [...AUTH_ERRORS, 'ERR_FORBIDDEN'] as const;

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
        operationId: 'setKillSwitch',
        summary: 'Pause or resume all new work, recorded as done by the actor named',
        description:
          'As `claw-approvals pause|resume`. Saying the same twice changes nothing (`changed: false`).',
        tags: ['admin'],
        security: SECURITY.admin,
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
        response: {
          200: { description: 'The kill switch after the request', ...pauseChangeSchema },
          ...errorResponses([...ADMIN_ERRORS, ...BODY_ERRORS]),
        },
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
