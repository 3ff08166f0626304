import fastifySwagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { VERSION } from '../version.js';
import { errorResponses } from './error-handler.js';
import type { ApiRateLimiter } from './rate-limit.js';

export const OPENAPI_PATH = '/openapi.json';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** How the route appears in /openapi.json beyond its schema. */
    openapi?: {
      /** The route takes a bare request without a body as well (a preValidation fills in `{}`). */
      bodyOptional?: boolean;
    };
  }
}

/** A route's `schema.security`: who may call it (OpenAPI security requirements). */
export const SECURITY = {
  /** The bearer key from `agents create`. */
  agent: [{ agentKey: [] }],
  /** An agent's key, or ADMIN_TOKEN. */
  agentOrAdmin: [{ agentKey: [] }, { adminToken: [] }],
  admin: [{ adminToken: [] }],
  /** Anyone; ADMIN_TOKEN shows more. */
  optionalAdmin: [{}, { adminToken: [] }],
  /** Mattermost's `Authorization: Token <command token>`. */
  commandToken: [{ commandToken: [] }],
} as const;

const securitySchemes = {
  agentKey: {
    type: 'http',
    scheme: 'bearer',
    description: 'An agent key from `claw-approvals agents create` (shown once; only its SHA-256 is stored).',
  },
  adminToken: {
    type: 'http',
    scheme: 'bearer',
    description: 'The ADMIN_TOKEN setting (at least 32 characters). Never served when it is not set.',
  },
  commandToken: {
    type: 'apiKey',
    in: 'header',
    name: 'Authorization',
    description:
      '`Token <MATTERMOST_COMMAND_TOKEN>`, as Mattermost signs the requests of a custom slash command.',
  },
} as const;

/**
 * Routes served but left out of the document, each with the reason. Every other route is
 * documented from its schemas; a test checks the router against the document.
 */
export const UNDOCUMENTED_ROUTES: Readonly<Record<string, string>> = {
  '/mcp':
    'The MCP server over streamable HTTP: JSON-RPC 2.0 messages defined by the Model Context Protocol, ' +
    'whose tools an MCP client lists with tools/list. OpenAPI cannot describe them usefully.',
};

const tags = [
  { name: 'jobs', description: 'An agent submits a plan, waits for the decision, claims tokens, reports.' },
  { name: 'tokens', description: 'Gateways and agents check, redeem and revoke capability-scoped tokens.' },
  { name: 'admin', description: 'For ADMIN_TOKEN: the kill switch, agents, policy pins, token revocation.' },
  { name: 'proofs', description: 'Proof bundles, signed policy versions, plans and the public keys.' },
  { name: 'mattermost', description: 'Callbacks Mattermost makes: the slash command, buttons, dialogs.' },
  { name: 'operations', description: 'Probes and this document.' },
];

/**
 * @fastify/swagger over every route's schemas, and `GET /openapi.json` (no credential, rate
 * limited by address like the other open routes). Register it before any route: it learns
 * routes as they are declared, so a route declared synchronously on the root instance before
 * this plugin has loaded is missed (declare routes inside `app.register`).
 *
 * The document is served whether or not the engine is configured: it is built from the routes
 * this server actually registered, so it never lists a route that would answer 404.
 */
export function registerOpenApi(
  app: FastifyInstance,
  deps: { limiter: ApiRateLimiter; publicUrl?: string | null },
): void {
  const optionalBodies = new Set<string>();
  const undocumented = new Map<string, Set<string>>();
  void app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'claw-approvals',
        version: VERSION,
        description:
          'Mattermost as the control plane for permissioned agent work. Every error answer has the shape ' +
          '{"error":{"code":"ERR_…","message":"…"}}; each response lists the codes a route answers with that status.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      ...(deps.publicUrl ? { servers: [{ url: deps.publicUrl }] } : {}),
      tags,
      components: { securitySchemes },
    },
    transform: ({ schema, url, route }) => {
      const methods = ([] as string[]).concat(route.method);
      if (Object.hasOwn(UNDOCUMENTED_ROUTES, url)) {
        const seen = undocumented.get(url) ?? new Set<string>();
        for (const m of methods) seen.add(m);
        undocumented.set(url, seen);
        return { schema: { ...schema, hide: true }, url };
      }
      if (route.config?.openapi?.bodyOptional)
        for (const m of methods) optionalBodies.add(`${m.toLowerCase()} ${url}`);
      return { schema, url };
    },
    transformObject: (doc) => {
      if (!('openapiObject' in doc)) throw new Error('an OpenAPI document was expected');
      const openapi = doc.openapiObject;
      for (const [path, item] of Object.entries(openapi.paths ?? {})) {
        for (const [method, op] of Object.entries(item ?? {})) {
          const operation = op as { requestBody?: { required?: boolean } };
          if (operation.requestBody && optionalBodies.has(`${method} ${path.replace(/\{(\w+)\}/g, ':$1')}`))
            operation.requestBody.required = false;
        }
      }
      return {
        ...openapi,
        ...(undocumented.size > 0
          ? {
              'x-undocumented-routes': [...undocumented].map(([path, methods]) => ({
                path,
                methods: [...methods].filter((m) => m !== 'HEAD').sort(),
                reason: UNDOCUMENTED_ROUTES[path],
              })),
            }
          : {}),
      };
    },
  });

  void app.register(async (scope) => {
    scope.addHook('onRequest', deps.limiter.byAddress);
    let text: string | undefined;
    scope.get(
      OPENAPI_PATH,
      {
        schema: {
          operationId: 'getOpenApi',
          summary: 'This document',
          description:
            'The OpenAPI 3.1 description of the routes this server serves, built from their schemas.',
          tags: ['operations'],
          response: {
            200: {
              description: 'An OpenAPI 3.1 document',
              type: 'object',
              required: ['openapi', 'info', 'paths'],
              properties: {
                openapi: { type: 'string' },
                info: { type: 'object' },
                paths: { type: 'object' },
              },
              additionalProperties: true,
            },
            ...errorResponses(['ERR_RATE_LIMITED']),
          },
        },
      },
      async (_req, reply) => {
        // Built once, after every route is known (the app is ready by the first request).
        text ??= JSON.stringify(app.swagger());
        reply.header('cache-control', 'public, max-age=300').type('application/json; charset=utf-8');
        return reply.send(text);
      },
    );
  });
}
