import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors.js';
import type { AppMetrics } from '../../metrics/app-metrics.js';
import { presentsAdminToken } from '../auth.js';
import { errorResponses } from '../error-handler.js';
import type { ApiRateLimiter } from '../rate-limit.js';

export interface MetricsRouteDeps {
  metrics: AppMetrics;
  /** `METRICS_TOKEN`: the bearer token a scrape must present; null serves `/metrics` to anyone. */
  token: string | null;
  limiter: ApiRateLimiter;
}

/**
 * `GET /metrics` in Prometheus' text format. With METRICS_TOKEN set, a scrape presents it as
 * `Authorization: Bearer <token>` (compared in constant time, failures charged to the address's
 * failure budget like any credential); without it the route is open, and should be bound where
 * only Prometheus reaches it.
 */
export function metricsRoutes(app: FastifyInstance, deps: MetricsRouteDeps): void {
  // Declared when the app boots, after the OpenAPI plugin, which learns routes as they are declared.
  void app.register(async (scope) => metricsRoute(scope, deps));
}

function metricsRoute(app: FastifyInstance, deps: MetricsRouteDeps): void {
  app.get(
    '/metrics',
    {
      schema: {
        operationId: 'getMetrics',
        summary: 'Prometheus metrics',
        description:
          'Decisions, mints, the outbox, the Mattermost connection, open jobs and the database pool, in the ' +
          'Prometheus text format 0.0.4. With METRICS_TOKEN set, it asks for `Authorization: Bearer <METRICS_TOKEN>`; ' +
          'without, anyone who reaches the server may read it.',
        tags: ['operations'],
        response: {
          // Sent as rendered text, never through a serializer.
          200: {
            description: 'The metrics in the Prometheus text exposition format 0.0.4',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
          ...errorResponses(['ERR_UNAUTHENTICATED', 'ERR_RATE_LIMITED']),
        },
      },
    },
    async (req, reply) => {
      if (deps.token === null) {
        await deps.limiter.byAddress(req, reply);
      } else {
        deps.limiter.attempt(req, reply);
        // The same constant-time bearer check as ADMIN_TOKEN's, against METRICS_TOKEN.
        if (!presentsAdminToken(req, deps.token))
          throw new AppError('ERR_UNAUTHENTICATED', 'the metrics need Authorization: Bearer <METRICS_TOKEN>');
        deps.limiter.authenticated(req, reply, 'metrics');
      }
      const body = await deps.metrics.render();
      return reply
        .header('content-type', deps.metrics.contentType)
        .header('cache-control', 'no-store')
        .send(body);
    },
  );
}
