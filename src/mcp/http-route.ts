import type { AddressInfo } from 'node:net';
import { ClawClient } from '@claw-approvals/client';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { type AuthDeps, authenticateAgentOnly, authenticationHook } from '../http/auth.js';
import type { ApiRateLimiter } from '../http/rate-limit.js';
import { VERSION } from '../version.js';
import { MM_ID } from './schemas.js';

export const DEFAULT_PERMISSION_TIMEOUT_SECONDS = 600;
export const MAX_PERMISSION_TIMEOUT_SECONDS = 86_400;
const MAX_MCP_BODY_BYTES = 1024 * 1024;
/** How long a stopping server lets waiting tools' answers go out before it closes their streams. */
const SHUTDOWN_GRACE_MS = 2_000;

export interface McpRouteDeps extends AuthDeps {
  limiter: ApiRateLimiter;
  /** Mattermost's base URL, for thread links; null without Mattermost. */
  mattermostUrl: string | null;
  /** Where the tools reach this server's own API; default: the address it listens on. */
  apiUrl?: () => string;
}

/**
 * The MCP SDK and the tools, imported on the first request to /mcp rather than at start-up
 * (a server that never serves MCP never loads them). Concurrent first requests share one import.
 */
async function importSdk() {
  const [tools, http] = await Promise.all([
    import('./mcp-server.js'),
    import('@modelcontextprotocol/sdk/server/streamableHttp.js'),
  ]);
  return { createMcpServer: tools.createMcpServer, Transport: http.StreamableHTTPServerTransport };
}
let sdk: ReturnType<typeof importSdk> | undefined;

interface McpQuery {
  channel?: string;
  requester?: string;
  team?: string;
  permission_timeout?: string;
}

/** The loopback URL of the listening server: a wildcard address is reached on loopback. */
export function loopbackUrl(address: AddressInfo | string | null): string {
  if (address === null || typeof address === 'string')
    throw new AppError('ERR_INTERNAL', 'the MCP endpoint needs the server to listen on TCP');
  const host =
    address.address === '0.0.0.0'
      ? '127.0.0.1'
      : address.address === '::'
        ? '[::1]'
        : address.family === 'IPv6'
          ? `[${address.address}]`
          : address.address;
  return `http://${host}:${address.port}`;
}

/** The caller's bearer key; the authentication hook has checked it already. */
function bearerKey(req: FastifyRequest): string {
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(req.headers.authorization ?? '');
  if (!m) throw new AppError('ERR_UNAUTHENTICATED', 'an agent bearer key is required');
  return m[1]!;
}

function notAllowed(reply: FastifyReply) {
  // The client's GET (a standing event stream) and DELETE (ending a session) have no use here.
  return reply
    .code(405)
    .header('allow', 'POST')
    .send({
      error: {
        code: 'ERR_BAD_REQUEST',
        message: 'this MCP endpoint is stateless: POST only (no sessions, no standing event stream)',
      },
    });
}

/**
 * `POST /mcp`: the MCP tools over streamable HTTP, for the agent whose key the request bears,
 * authenticated and rate limited like the `/v1` agent routes. The tools call this server's
 * own API through the client with the caller's key, so they can do exactly what the agent
 * could do over HTTP and no more.
 *
 * Stateless: every request gets a fresh MCP server and transport, and nothing is kept between
 * requests. Every tool takes what it works on (job, step) as arguments and the key comes with
 * each request, so a session would hold nothing of use, while keeping one would pin a client to
 * one replica and leave state to expire. A cancellation therefore takes effect when the
 * client closes the request's connection.
 */
export function mcpRoutes(app: FastifyInstance, deps: McpRouteDeps): void {
  void app.register(async (scope) => {
    scope.addHook('onRequest', authenticationHook({ ...deps, allowAdmin: false }));
    // A tool may wait for people for minutes. On shutdown the waiting tools answer at once
    // (a tool error, or a permission denied), their answers go out, and then whatever is
    // still open is closed, so a waiting agent never holds the server up.
    const stopping = new AbortController();
    const live = new Map<McpServer, Promise<void>>();
    scope.addHook('preClose', async () => {
      stopping.abort();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled(live.values()),
        new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS))),
      ]);
      clearTimeout(timer);
      await Promise.allSettled([...live.keys()].map((s) => s.close()));
    });
    const apiUrl = deps.apiUrl ?? (() => loopbackUrl(app.server.address()));

    scope.post<{ Querystring: McpQuery }>(
      '/mcp',
      {
        // A coding agent's tool input may be large (a file to write): let the permission prompt
        // answer "too large to put before approvers" itself. The key is checked before the body is read.
        bodyLimit: MAX_MCP_BODY_BYTES,
        schema: {
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              channel: { type: 'string', pattern: MM_ID.source },
              requester: { type: 'string', pattern: MM_ID.source },
              team: { type: 'string', pattern: MM_ID.source },
              permission_timeout: { type: 'string', pattern: '^[1-9][0-9]{0,4}$' },
            },
          },
        },
      },
      async (req, reply) => {
        await authenticateAgentOnly(req, deps);
        const timeout = Number(req.query.permission_timeout ?? DEFAULT_PERMISSION_TIMEOUT_SECONDS);
        if (timeout > MAX_PERMISSION_TIMEOUT_SECONDS)
          throw new AppError(
            'ERR_VALIDATION',
            `request querystring/permission_timeout must be <= ${MAX_PERMISSION_TIMEOUT_SECONDS}`,
          );
        const { createMcpServer, Transport } = await (sdk ??= importSdk());
        const server = createMcpServer(
          {
            client: new ClawClient({ baseUrl: apiUrl(), agentKey: bearerKey(req) }),
            log: req.log,
            mattermostUrl: deps.mattermostUrl,
            channelId: req.query.channel ?? null,
            requesterId: req.query.requester ?? null,
            teamId: req.query.team ?? null,
            permissionTimeoutSeconds: timeout,
            stopping: stopping.signal,
          },
          VERSION,
        );
        const transport = new Transport({ sessionIdGenerator: undefined });
        // The transport writes the answer itself, past fastify's onSend: the headers fastify
        // already set (the request id of every answer) go onto the raw response first.
        for (const [name, value] of Object.entries(reply.getHeaders()))
          if (value !== undefined) reply.raw.setHeader(name, value);
        reply.hijack();
        live.set(
          server,
          new Promise((resolve) =>
            reply.raw.once('close', () => {
              live.delete(server);
              // Closing aborts the tools still working for this request (their jobs are closed).
              void server.close();
              resolve();
            }),
          ),
        );
        try {
          await server.connect(transport);
          await transport.handleRequest(req.raw, reply.raw, req.body);
        } catch (err) {
          req.log.error({ err }, 'MCP request failed');
          if (reply.raw.headersSent) reply.raw.destroy();
          else
            reply.raw
              .writeHead(500, { 'content-type': 'application/json; charset=utf-8' })
              .end(JSON.stringify({ error: { code: 'ERR_INTERNAL', message: 'internal error' } }));
        }
      },
    );
    scope.get('/mcp', async (_req, reply) => notAllowed(reply));
    scope.delete('/mcp', async (_req, reply) => notAllowed(reply));
  });
}
