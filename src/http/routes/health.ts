import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/database.js';
import { isDatabaseReachable } from '../../db/database.js';
import type { PolicyService } from '../../policy/policy-service.js';

/** A readiness check contributed by a component (the chat adapter adds one later). */
export type ReadinessCheck = () => Promise<{ ok: boolean; reason?: string; [k: string]: unknown }>;

export function healthRoutes(
  app: FastifyInstance,
  deps: { db: Db; policies: PolicyService; extraChecks?: Record<string, ReadinessCheck> },
): void {
  app.get(
    '/healthz',
    { schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } } },
    async () => ({
      ok: true,
    }),
  );

  const check = {
    type: 'object',
    required: ['ok'],
    properties: { ok: { type: 'boolean' }, reason: { type: 'string' } },
    additionalProperties: true,
  } as const;
  const readySchema = {
    type: 'object',
    additionalProperties: false,
    required: ['ok', 'reasons', 'checks'],
    properties: {
      ok: { type: 'boolean' },
      reasons: { type: 'array', items: { type: 'string' } },
      checks: { type: 'object', additionalProperties: check },
    },
  } as const;

  app.get(
    '/readyz',
    { schema: { response: { 200: readySchema, 503: readySchema } } },
    async (_req, reply) => {
      const checks: Record<string, { ok: boolean; [k: string]: unknown }> = {};
      checks.database = await isDatabaseReachable(deps.db);
      const snap = deps.policies.current();
      const reloadError = deps.policies.reloadError();
      checks.policies = reloadError
        ? { ok: false, reason: `the last policy reload failed: ${reloadError}` }
        : snap
          ? {
              ok: true,
              active: [...snap.resolution.active.values()].map((c) => ({
                name: c.name,
                hash: c.hash,
                origin: c.origin,
              })),
              open_channels: snap.resolution.channels.size,
              closed_channels: snap.resolution.closed.size,
              problems: snap.problems,
            }
          : { ok: false, reason: 'policies are not loaded' };
      for (const [name, check] of Object.entries(deps.extraChecks ?? {})) {
        try {
          checks[name] = await check();
        } catch {
          checks[name] = { ok: false, reason: 'check failed' };
        }
      }
      const ok = Object.values(checks).every((c) => c.ok);
      const reasons = Object.entries(checks)
        .filter(([, c]) => !c.ok)
        .map(([name, c]) => `${name}: ${String(c.reason ?? 'not ready')}`);
      return reply.status(ok ? 200 : 503).send({ ok, reasons, checks });
    },
  );
}
