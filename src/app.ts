import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Db } from './db/database.js';
import { frameworkErrors, installErrorHandler } from './http/error-handler.js';
import { healthRoutes, type ReadinessCheck } from './http/routes/health.js';
import { jwksRoutes } from './http/routes/jwks.js';
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
  return app;
}
