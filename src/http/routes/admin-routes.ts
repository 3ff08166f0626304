import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors.js';
import type { EngineContext } from '../../jobs/context.js';
import type { PolicyService } from '../../policy/policy-service.js';
import type { KeyRing } from '../../tokens/key-ring.js';
import { authenticate, authenticationHook } from '../auth.js';
import type { ApiRateLimiter } from '../rate-limit.js';
import { adminAgentRoutes } from './admin-agents.js';
import { adminKillSwitchRoutes } from './admin-kill-switch.js';
import { adminPolicyRoutes } from './admin-policies.js';
import { adminTokenRoutes } from './admin-tokens.js';

export interface AdminRouteDeps {
  engine: EngineContext;
  policies: PolicyService;
  keyRing: KeyRing;
  adminToken: string | null;
  limiter: ApiRateLimiter;
}

/**
 * `/v1/admin/…` for the ADMIN_TOKEN holder only: what the CLI does to state (pins, agents,
 * token revocation, the kill switch) while `serve` holds the embedded database. Each route
 * calls the engine function the CLI calls, with the actor the caller names (the token holder
 * is trusted to name the operator, as the CLI is). Register in a scope of its own: the hooks
 * authenticate before the body is read, count the caller's budget like every authenticated
 * route, and refuse agent keys.
 */
export function adminRoutes(app: FastifyInstance, deps: AdminRouteDeps): void {
  const auth = { db: deps.engine.db, adminToken: deps.adminToken };
  app.addHook('onRequest', authenticationHook({ ...auth, limiter: deps.limiter, allowAdmin: true }));
  app.addHook('onRequest', async (req, reply) => {
    const caller = await authenticate(req, auth, { allowAdmin: true });
    if (caller.kind !== 'admin') throw new AppError('ERR_FORBIDDEN', 'this route needs ADMIN_TOKEN');
    // Keys, agents and pins are nobody's to cache.
    reply.header('cache-control', 'no-store');
  });
  adminAgentRoutes(app, deps);
  adminPolicyRoutes(app, deps);
  adminTokenRoutes(app, deps);
  adminKillSwitchRoutes(app, deps);
}
