import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Db } from './db/database.js';
import { frameworkErrors, installErrorHandler } from './http/error-handler.js';
import { healthRoutes, type ReadinessCheck } from './http/routes/health.js';
import { createHash } from 'node:crypto';
import { bundleRoutes } from './http/routes/bundles.js';
import { jobRoutes } from './http/routes/jobs.js';
import { jwksRoutes } from './http/routes/jwks.js';
import { planRoutes } from './http/routes/plans.js';
import { type TokenRouteLimits, tokenRoutes } from './http/routes/tokens.js';
import type { EngineContext } from './jobs/context.js';
import { wpcRoutes } from './http/routes/wpc.js';
import type { PolicyService } from './policy/policy-service.js';
import type { KeyRing } from './tokens/key-ring.js';

export interface AppDeps {
  db: Db;
  keyRing: KeyRing;
  policies: PolicyService;
  log: Logger;
  readinessChecks?: Record<string, ReadinessCheck>;
  /** Largest accepted request body in bytes. */
  bodyLimit?: number;
  /** The core engine: jobs, tokens and bundles routes are served only with it. */
  engine?: EngineContext;
  adminToken?: string | null;
  tokenLimits?: TokenRouteLimits;
}

/** Builds the HTTP application without listening: tests drive it with `app.inject`. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const app: FastifyInstance = Fastify({
    // pino's Logger is a FastifyBaseLogger; the declared generic would leak into every route type.
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: deps.bodyLimit ?? 64 * 1024,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestIdHeader: false,
    frameworkErrors,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  installErrorHandler(app);
  healthRoutes(app, { db: deps.db, policies: deps.policies, extraChecks: deps.readinessChecks ?? {} });
  jwksRoutes(app, { keyRing: deps.keyRing });
  wpcRoutes(app, { db: deps.db, keyRing: deps.keyRing });
  if (deps.engine) {
    const engine = deps.engine;
    const adminToken = deps.adminToken ?? null;
    // Per caller: the hash of the bearer credential (never the credential), else the address.
    void app.register(rateLimit, {
      global: false,
      keyGenerator: (req) => {
        const auth = req.headers.authorization;
        return typeof auth === 'string' ? createHash('sha256').update(auth).digest('hex') : req.ip;
      },
    });
    void app.register(async (scoped) => {
      jobRoutes(scoped, { engine, adminToken });
      tokenRoutes(scoped, { engine, adminToken, limits: deps.tokenLimits ?? { max: 600 } });
      bundleRoutes(scoped, { db: deps.db });
      planRoutes(scoped, { db: deps.db });
    });
  }
  return app;
}
