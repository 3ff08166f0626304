import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';

/**
 * Routes that orchestrators and scrapers call every few seconds. Their "incoming request" and
 * "request completed" lines are debug, not info, so they do not bury what happens at info.
 * Matched on the route, so `/healthz?x` is a probe and an unknown `/healthzz` is not.
 */
export const PROBE_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

const isProbe = (req: FastifyRequest) => PROBE_ROUTES.has(req.routeOptions.url ?? '');

/** fastify's request lines, with the probes' at debug level (a probe's failure stays an error). */
export class RequestLogController extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply): void {
    if (!isProbe(request)) return super.incomingRequest(request, reply);
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (error || !isProbe(request)) return super.requestCompleted(error, request, reply);
    reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}
