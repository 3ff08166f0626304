import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../../errors.js';
import type { EngineContext } from '../../jobs/context.js';
import { hasUnsafeText } from '../../jobs/plan.js';
import { MAX_REASON, pauseState, type PauseState, setPaused } from '../../jobs/kill-switch.js';
import { authenticate } from '../auth.js';
import { AUTH_ERRORS, BODY_ERRORS, errorResponses } from '../error-handler.js';
import { SECURITY } from '../openapi.js';
import { requestEngine } from '../request-id.js';

const stateSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['paused', 'actor', 'reason', 'changed_at'],
  properties: {
    paused: { type: 'boolean' },
    actor: { type: ['string', 'null'] },
    reason: { type: ['string', 'null'] },
    changed_at: { type: ['string', 'null'] },
    changed: { type: 'boolean', description: 'POST only: false when it already was in that state' },
    open_jobs: { type: 'integer', description: 'POST only: open jobs the change touched' },
  },
} as const;

/** Who the kill switch refuses: no or a wrong credential, a spent budget, an agent's key. */
const ADMIN_ERRORS = [...AUTH_ERRORS, 'ERR_FORBIDDEN'] as const;

const body = {
  type: 'object',
  additionalProperties: false,
  properties: { reason: { type: 'string', maxLength: MAX_REASON } },
} as const;

const view = (s: PauseState) => ({
  paused: s.paused,
  actor: s.actor,
  reason: s.reason,
  changed_at: s.changedAt?.toISOString() ?? null,
});

/**
 * The kill switch over HTTP, for ADMIN_TOKEN only: `GET /v1/admin/pause` reads it, `POST
 * /v1/admin/pause` and `POST /v1/admin/resume` change it (the same as `@bot pause` by the
 * security group), on every replica at once.
 */
export function pauseRoutes(
  app: FastifyInstance,
  deps: { engine: EngineContext; adminToken: string | null },
): void {
  const ctx = deps.engine;
  const admin = async (req: FastifyRequest) => {
    const caller = await authenticate(req, { db: ctx.db, adminToken: deps.adminToken }, { allowAdmin: true });
    if (caller.kind !== 'admin') throw new AppError('ERR_FORBIDDEN', 'the kill switch needs ADMIN_TOKEN');
  };

  app.get(
    '/v1/admin/pause',
    {
      schema: {
        operationId: 'getPauseState',
        summary: 'Whether new work is paused (the kill switch), since when, by whom and why',
        tags: ['admin'],
        security: SECURITY.admin,
        response: {
          200: { description: 'The kill switch', ...stateSchema },
          ...errorResponses(ADMIN_ERRORS),
        },
      },
    },
    async (req) => {
      await admin(req);
      return view(await pauseState(ctx.db));
    },
  );

  for (const kind of ['pause', 'resume'] as const) {
    app.post<{ Body: { reason?: string } | undefined }>(
      `/v1/admin/${kind}`,
      {
        // The body is optional: a bare POST pauses (or resumes) without a reason.
        preValidation: async (req) => {
          req.body ??= {};
        },
        config: { openapi: { bodyOptional: true } },
        schema: {
          operationId: kind === 'pause' ? 'pause' : 'resume',
          summary:
            kind === 'pause'
              ? 'Pause all new work on every replica: nothing is requested, approved, minted, claimed or redeemed'
              : 'Resume work paused by the kill switch',
          description: 'The body is optional. Doing it twice changes nothing (`changed: false`).',
          tags: ['admin'],
          security: SECURITY.admin,
          body,
          response: {
            200: { description: 'The kill switch after the request', ...stateSchema },
            ...errorResponses([...ADMIN_ERRORS, ...BODY_ERRORS]),
          },
        },
      },
      async (req) => {
        await admin(req);
        const reason = (req.body?.reason ?? '').trim();
        if (hasUnsafeText(reason))
          throw new AppError('ERR_VALIDATION', 'the reason must be one line of plain text');
        const change = await setPaused(requestEngine(ctx, req), {
          paused: kind === 'pause',
          actor: { kind: 'admin', via: 'api' },
          reason,
        });
        return { ...view(change.state), changed: change.changed, open_jobs: change.jobs.length };
      },
    );
  }
}
