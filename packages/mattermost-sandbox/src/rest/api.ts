import type { Logger } from 'pino';
import { AppError, appError } from '../app-error.js';
import type { SandboxApp } from '../app.js';
import type { FaultSpec, Faults } from '../faults.js';
import { botRoutes } from './bots.js';
import { channelRoutes } from './channels.js';
import { groupRoutes } from './groups.js';
import { parseAuthToken, type Exchange } from './http.js';
import { integrationRoutes } from './integrations.js';
import { postRoutes } from './posts.js';
import type { Route } from './route.js';
import { systemRoutes } from './system.js';
import { teamRoutes } from './teams.js';
import { userRoutes } from './users.js';
import { incomingWebhook } from './webhook.js';

const ROUTES: Route[] = [
  ...systemRoutes,
  ...userRoutes,
  ...botRoutes,
  ...teamRoutes,
  ...groupRoutes,
  ...channelRoutes,
  ...postRoutes,
  ...integrationRoutes,
];

/**
 * throttled's GCRA limiter as Mattermost configures it by default (RateLimitSettings PerSec 10,
 * MaxBurst 100): X-Ratelimit-Limit is MaxBurst + 1.
 */
const RATE_LIMIT = '101';

/** app/ratelimit.go RateLimitWriter: http.Error(w, "limit exceeded", 429) plus throttled's headers. */
function sendRateLimited(ex: Exchange, fault: FaultSpec): void {
  const retry = String(fault.retryAfterSeconds ?? 1);
  ex.sendRaw(
    429,
    {
      'X-Ratelimit-Limit': RATE_LIMIT,
      'X-Ratelimit-Remaining': '0',
      'X-Ratelimit-Reset': retry,
      'Retry-After': retry,
      'Content-Type': 'text/plain; charset=utf-8',
      'X-Content-Type-Options': 'nosniff',
    },
    'limit exceeded\n',
  );
}

function sendInjected(ex: Exchange, fault: FaultSpec): void {
  if (fault.status === 429) {
    sendRateLimited(ex, fault);
    return;
  }
  const err =
    fault.status === 503
      ? appError('api.context.server_busy.app_error', 503)
      : new AppError('sandbox.injected_fault.app_error', 'Injected fault.', fault.status);
  ex.sendError(err);
}

export interface ApiDeps {
  app: SandboxApp;
  faults: Faults;
  log?: Logger;
}

/** Everything under /api/v4 (except the WebSocket upgrade) and /hooks. */
export async function handleApi(ex: Exchange, deps: ApiDeps): Promise<void> {
  const { app } = deps;
  try {
    const hook = /^\/hooks\/([A-Za-z0-9]+)$/.exec(ex.path);
    if (hook && ex.method === 'POST') {
      await incomingWebhook(ex, app, hook[1]!);
      return;
    }
    if (!ex.path.startsWith('/api/v4/')) throw appError('api.context.404.app_error', 404);
    const fault = deps.faults.take(ex.method, ex.path);
    if (fault) {
      sendInjected(ex, fault);
      return;
    }
    let pathMatched = false;
    for (const r of ROUTES) {
      const match = r.pattern.exec(ex.path);
      if (!match) continue;
      pathMatched = true;
      if (r.method !== ex.method) continue;
      ex.params = { ...match.groups };
      if (r.session) authenticate(ex, app);
      await r.handle(ex, app);
      return;
    }
    if (pathMatched) {
      // gorilla/mux answers a known path with the wrong method with an empty 405.
      ex.sendRaw(405, {}, '');
      return;
    }
    throw appError('api.context.404.app_error', 404);
  } catch (err) {
    if (err instanceof AppError) {
      ex.sendError(err);
      return;
    }
    deps.log?.error({ err, path: ex.path }, 'sandbox handler failed');
    ex.sendError(new AppError('sandbox.internal.app_error', 'Internal error in the sandbox.', 500));
  }
}

/** web/handlers.go ServeHTTP + Context.SessionRequired for APISessionRequired routes. */
function authenticate(ex: Exchange, app: SandboxApp): void {
  const { token, location } = parseAuthToken(ex.req.headers.authorization, ex.url.searchParams);
  const userId = token === '' ? undefined : app.store.tokens.get(token);
  if (token !== '' && userId && location === 'query')
    throw appError('api.context.token_provided.app_error', 401);
  if (!userId) throw appError('api.context.session_expired.app_error', 401);
  ex.userId = userId;
}
