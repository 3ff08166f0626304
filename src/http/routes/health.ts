import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../../db/database.js';
import { isDatabaseReachable } from '../../db/database.js';
import { AppError } from '../../errors.js';
import type { PolicyService } from '../../policy/policy-service.js';
import { presentsAdminToken } from '../auth.js';
import { errorResponses } from '../error-handler.js';
import { SECURITY } from '../openapi.js';
import type { ApiRateLimiter } from '../rate-limit.js';

/**
 * A readiness check contributed by a component (the chat adapter). `reason` may carry
 * detail and is shown to ADMIN_TOKEN holders only; `summary` is what anyone may read.
 */
export type ReadinessCheck = () => Promise<{
  ok: boolean;
  reason?: string;
  summary?: string;
  [k: string]: unknown;
}>;

type Check = { ok: boolean; reason?: string; [k: string]: unknown };

/** What anyone may read about the policies: counts, not names. */
function policySummary(problems: number, unresolvedNames: number): string {
  const parts = [`policy problems: ${problems}`];
  if (unresolvedNames > 0) parts.push(`Mattermost names unresolved: ${unresolvedNames}`);
  return parts.join('; ');
}

/** What an unauthenticated caller learns of a check: ready or not, and why in general terms. */
type PublicCheck = { ok: boolean; reason?: string };

export interface HealthDeps {
  db: Db;
  policies: PolicyService;
  extraChecks?: Record<string, ReadinessCheck>;
  adminToken: string | null;
  limiter: ApiRateLimiter;
}

export function healthRoutes(app: FastifyInstance, deps: HealthDeps): void {
  // Declared when the app boots, after the OpenAPI plugin, which learns routes as they are declared.
  void app.register(async (scope) => probeRoutes(scope, deps));
}

function probeRoutes(app: FastifyInstance, deps: HealthDeps): void {
  app.get(
    '/healthz',
    {
      schema: {
        operationId: 'getHealth',
        summary: 'Liveness: the process runs',
        tags: ['operations'],
        response: {
          200: {
            description: 'Always `{"ok":true}` while the process runs',
            type: 'object',
            additionalProperties: false,
            required: ['ok'],
            properties: { ok: { type: 'boolean' } },
          },
          ...errorResponses([]),
        },
      },
    },
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

  /** Every check, in full: the policy and channel inventory and each problem. */
  async function inventory(): Promise<Record<string, Check>> {
    const checks: Record<string, Check> = {};
    const db = await isDatabaseReachable(deps.db);
    checks.database = db.ok
      ? { ok: true }
      : { ok: false, reason: db.reason, summary: 'database unreachable' };
    const snap = deps.policies.current();
    const reloadError = deps.policies.reloadError();
    checks.policies = reloadError
      ? {
          ok: false,
          reason: `the last policy reload failed: ${reloadError}`,
          summary: 'policy reload failed',
        }
      : snap
        ? {
            ok: true,
            ...(snap.problems.length > 0 || snap.unresolvedNames.length > 0
              ? { summary: policySummary(snap.problems.length, snap.unresolvedNames.length) }
              : {}),
            active: [...snap.resolution.active.values()].map((c) => ({
              name: c.name,
              hash: c.hash,
              origin: c.origin,
            })),
            open_channels: snap.resolution.channels.size,
            closed_channels: snap.resolution.closed.size,
            channels: {
              open: [...snap.resolution.channels].map(([channel, b]) => ({ channel, policy: b.policyName })),
              closed: [...snap.resolution.closed].map(([channel, reasons]) => ({ channel, reasons })),
            },
            problems: snap.problems,
            // Which names, and why: never a token or an address.
            names: {
              resolved_at: snap.names.resolvedAt.toISOString(),
              unresolved: snap.unresolvedNames,
            },
          }
        : { ok: false, reason: 'policies are not loaded', summary: 'policies not loaded' };
    for (const [name, extra] of Object.entries(deps.extraChecks ?? {})) {
      try {
        checks[name] = await extra();
      } catch {
        checks[name] = { ok: false, reason: 'check failed' };
      }
    }
    return checks;
  }

  /** May this request see the inventory? Only with ADMIN_TOKEN; a wrong token counts as a failed authentication. */
  function maySeeInventory(req: FastifyRequest, reply: FastifyReply): boolean {
    if (req.headers.authorization === undefined) return false;
    deps.limiter.attempt(req, reply);
    if (deps.adminToken === null)
      throw new AppError('ERR_UNAUTHENTICATED', 'ADMIN_TOKEN is not configured: the inventory is not served');
    if (!presentsAdminToken(req, deps.adminToken))
      throw new AppError('ERR_UNAUTHENTICATED', 'the inventory needs Authorization: Bearer <ADMIN_TOKEN>');
    deps.limiter.authenticated(req, reply, 'admin');
    return true;
  }

  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'getReadiness',
        summary: 'Readiness: database, policies and (with the bot) Mattermost',
        description:
          'Anyone gets each check in general terms. With `Authorization: Bearer <ADMIN_TOKEN>`: every reason in ' +
          'full, the active policies, open and closed channels and each policy problem. A wrong token is 401 and ' +
          'counts as a failed authentication.',
        tags: ['operations'],
        security: SECURITY.optionalAdmin,
        response: {
          200: { description: 'Ready', ...readySchema },
          503: { description: 'Not ready: `reasons` says why', ...readySchema },
          ...errorResponses(['ERR_UNAUTHENTICATED', 'ERR_RATE_LIMITED']),
        },
      },
    },
    async (req, reply) => {
      const full = maySeeInventory(req, reply);
      const checks = await inventory();
      const ok = Object.values(checks).every((c) => c.ok);
      reply.status(ok ? 200 : 503).header('cache-control', 'no-store');
      if (full) {
        const reasons = Object.entries(checks)
          .filter(([, c]) => !c.ok)
          .map(([name, c]) => `${name}: ${String(c.reason ?? 'not ready')}`);
        return { ok, reasons, checks };
      }
      // Built field by field: nothing but these general phrases reaches an unauthenticated caller.
      const general: Record<string, PublicCheck> = {};
      for (const [name, c] of Object.entries(checks)) {
        const summary = typeof c.summary === 'string' ? c.summary : c.ok ? undefined : `${name} not ready`;
        general[name] = summary === undefined ? { ok: c.ok } : { ok: c.ok, reason: summary };
      }
      const reasons = Object.values(general)
        .filter((c) => !c.ok)
        .map((c) => c.reason!);
      return { ok, reasons, checks: general };
    },
  );
}
