import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../../errors.js';
import type { EngineContext } from '../../jobs/context.js';
import { hasUnsafeText } from '../../jobs/plan.js';
import { MAX_REASON, pauseState, type PauseState, setPaused } from '../../jobs/kill-switch.js';
import { authenticate } from '../auth.js';

const stateSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['paused', 'actor', 'reason', 'changed_at'],
  properties: {
    paused: { type: 'boolean' },
    actor: { type: ['string', 'null'] },
    reason: { type: ['string', 'null'] },
    changed_at: { type: ['string', 'null'] },
    changed: { type: 'boolean' },
    open_jobs: { type: 'integer' },
  },
} as const;

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

  app.get('/v1/admin/pause', { schema: { response: { 200: stateSchema } } }, async (req) => {
    await admin(req);
    return view(await pauseState(ctx.db));
  });

  for (const kind of ['pause', 'resume'] as const) {
    app.post<{ Body: { reason?: string } | undefined }>(
      `/v1/admin/${kind}`,
      {
        // The body is optional: a bare POST pauses (or resumes) without a reason.
        preValidation: async (req) => {
          req.body ??= {};
        },
        schema: { body, response: { 200: stateSchema } },
      },
      async (req) => {
        await admin(req);
        const reason = (req.body?.reason ?? '').trim();
        if (hasUnsafeText(reason))
          throw new AppError('ERR_VALIDATION', 'the reason must be one line of plain text');
        const change = await setPaused(ctx, {
          paused: kind === 'pause',
          actor: { kind: 'admin', via: 'api' },
          reason,
        });
        return { ...view(change.state), changed: change.changed, open_jobs: change.jobs.length };
      },
    );
  }
}
