import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors.js';
import type { AppMetrics } from '../../metrics/app-metrics.js';
import { presentsAdminToken } from '../auth.js';
import { errorBodySchema } from '../error-handler.js';
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
  app.get(
    '/metrics',
    {
      schema: {
        response: {
          200: { type: 'string', description: 'Prometheus text exposition format 0.0.4' },
          401: errorBodySchema,
          429: errorBodySchema,
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
