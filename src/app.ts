import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Db } from './db/database.js';
import { AppError } from './errors.js';
import { authenticationBodyGuard, authenticationHook } from './http/auth.js';
import { frameworkErrors, installErrorHandler } from './http/error-handler.js';
import { registerOpenApi } from './http/openapi.js';
import { ApiRateLimiter, DEFAULT_RATE_LIMITS, type RateLimits } from './http/rate-limit.js';
import { installRequestIds, requestIdOf } from './http/request-id.js';
import { RequestLogController } from './http/request-log.js';
import { adminRoutes } from './http/routes/admin-routes.js';
import { bundleRoutes } from './http/routes/bundles.js';
import { healthRoutes, type ReadinessCheck } from './http/routes/health.js';
import { jobRoutes, MAX_WAIT_SECONDS } from './http/routes/jobs.js';
import { jwksRoutes } from './http/routes/jwks.js';
import { metricsRoutes } from './http/routes/metrics.js';
import { type CommandRouteDeps, mattermostCommandRoutes } from './http/routes/mattermost-command.js';
import { type MattermostActionDeps, mattermostActionRoutes } from './http/routes/mattermost-actions.js';
import { pauseRoutes } from './http/routes/pause.js';
import { planRoutes } from './http/routes/plans.js';
import { tokenRoutes } from './http/routes/tokens.js';
import { wpcRoutes } from './http/routes/wpc.js';
import type { EngineContext } from './jobs/context.js';
import type { AppMetrics } from './metrics/app-metrics.js';
import { mcpRoutes } from './mcp/http-route.js';
import type { PolicyService } from './policy/policy-service.js';
import type { KeyRing } from './tokens/key-ring.js';

/** How long a connection may take, so that trickled (slowloris) connections are closed. */
export interface HttpTimeouts {
  /** The request line and headers must have arrived within this. */
  headersMs: number;
  /** The whole request, body included, must have arrived within this (then 408). */
  requestMs: number;
  /** A socket with no traffic either way is closed; longer than the longest long-poll. */
  idleMs: number;
  /** A kept-alive connection waits this long for its next request. */
  keepAliveMs: number;
  /** How often Node checks requests in progress against `headersMs` and `requestMs`. */
  checkIntervalMs: number;
}

export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = {
  headersMs: 10_000,
  requestMs: 15_000,
  idleMs: 60_000,
  keepAliveMs: 10_000,
  checkIntervalMs: 1_000,
};

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
  /** Budgets of the `/v1` routes; unset fields keep DEFAULT_RATE_LIMITS. */
  rateLimits?: Partial<RateLimits>;
  /** Unset fields keep DEFAULT_HTTP_TIMEOUTS. */
  timeouts?: Partial<HttpTimeouts>;
  /** `config.mattermost.url`: the bundle page links the job's posts there; absent, it names their ids. */
  mattermostUrl?: string | null;
  /** The `/claw` slash command's token and Mattermost's channels; absent, the command is refused. */
  slashCommand?: Pick<CommandRouteDeps, 'token' | 'chat' | 'answersPerMinute'>;
  /** The status post's button and dialog callbacks; absent without PUBLIC_URL or Mattermost. */
  mattermostActions?: Omit<MattermostActionDeps, 'engine'>;
  /** Served at `/metrics`; absent, there is no such route. */
  metrics?: AppMetrics;
  /** `METRICS_TOKEN`: `/metrics` asks for it as a bearer token; null leaves it open. */
  metricsToken?: string | null;
}

function checkedTimeouts(given: Partial<HttpTimeouts> | undefined): HttpTimeouts {
  const t = { ...DEFAULT_HTTP_TIMEOUTS, ...given };
  // An idle timeout shorter than a long-poll would cut the agent's wait off mid-way.
  if (t.idleMs <= MAX_WAIT_SECONDS * 1000)
    throw new AppError(
      'ERR_CONFIG_INVALID',
      `the idle timeout must exceed the ${MAX_WAIT_SECONDS} s long-poll`,
    );
  if (t.headersMs > t.requestMs)
    throw new AppError('ERR_CONFIG_INVALID', 'the headers timeout must not exceed the request timeout');
  return t;
}

/** Builds the HTTP application without listening: tests drive it with `app.inject`. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const timeouts = checkedTimeouts(deps.timeouts);
  const app: FastifyInstance = Fastify({
    // pino's Logger is a FastifyBaseLogger; the declared generic would leak into every route type.
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: deps.bodyLimit ?? 64 * 1024,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestIdHeader: false,
    genReqId: requestIdOf,
    logController: new RequestLogController(),
    requestTimeout: timeouts.requestMs,
    connectionTimeout: timeouts.idleMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    http: { headersTimeout: timeouts.headersMs, connectionsCheckingInterval: timeouts.checkIntervalMs },
    frameworkErrors,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  installErrorHandler(app);
  const adminToken = deps.adminToken ?? null;
  const limiter = new ApiRateLimiter({ ...DEFAULT_RATE_LIMITS, ...deps.rateLimits });
  installRequestIds(app);
  registerOpenApi(app, { limiter, publicUrl: deps.engine?.publicUrl ?? null });
  healthRoutes(app, {
    db: deps.db,
    policies: deps.policies,
    extraChecks: deps.readinessChecks ?? {},
    adminToken,
    limiter,
  });
  jwksRoutes(app, { keyRing: deps.keyRing });
  if (deps.metrics) metricsRoutes(app, { metrics: deps.metrics, token: deps.metricsToken ?? null, limiter });
  // Every /v1 route is rate limited: by address where no credential is needed, else by caller.
  void app.register(async (open) => {
    open.addHook('onRequest', limiter.byAddress);
    wpcRoutes(open, { db: deps.db, keyRing: deps.keyRing });
    if (deps.engine) {
      bundleRoutes(open, {
        db: deps.db,
        keyRing: deps.keyRing,
        gatewaySigners: deps.engine.gatewaySigners,
        mattermostUrl: deps.mattermostUrl ?? null,
        publicUrl: deps.engine.publicUrl ?? null,
      });
    }
    if (deps.engine) planRoutes(open, { db: deps.db });
    // Mattermost calls back unauthenticated: the MAC in each context or state is the credential.
    if (deps.engine && deps.mattermostActions)
      mattermostActionRoutes(open, { engine: deps.engine, ...deps.mattermostActions });
  });
  if (deps.engine) {
    const engine = deps.engine;
    const auth = { db: deps.db, adminToken, limiter };
    void app.register(async (agents) => {
      agents.addHook('onRequest', authenticationHook({ ...auth, allowAdmin: false }));
      jobRoutes(agents, { engine, adminToken });
    });
    void app.register(async (callers) => {
      callers.addHook('onRequest', authenticationHook({ ...auth, allowAdmin: true }));
      callers.addHook('preParsing', authenticationBodyGuard());
      tokenRoutes(callers, { engine, adminToken });
      pauseRoutes(callers, { engine, adminToken });
    });
    // MCP tools over streamable HTTP, for agents, calling this API back with the caller's key.
    mcpRoutes(app, { ...auth, mattermostUrl: deps.mattermostUrl ?? null });
    void app.register(async (admin) =>
      adminRoutes(admin, { engine, policies: deps.policies, keyRing: deps.keyRing, adminToken, limiter }),
    );
    // Mattermost presents the command's token (no token configured: every request is refused).
    void app.register(async (mattermost) => {
      mattermostCommandRoutes(mattermost, {
        engine,
        limiter,
        mattermostUrl: deps.mattermostUrl ?? null,
        token: deps.slashCommand?.token ?? null,
        chat: deps.slashCommand?.chat ?? null,
        ...(deps.slashCommand?.answersPerMinute
          ? { answersPerMinute: deps.slashCommand.answersPerMinute }
          : {}),
      });
    });
  }
  return app;
}
