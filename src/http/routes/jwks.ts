import type { FastifyInstance } from 'fastify';
import type { KeyRing } from '../../tokens/key-ring.js';
import { errorResponses } from '../error-handler.js';

const jwkSchema = {
  type: 'object',
  // Declared properties only: a private "d" can never leave through this route.
  additionalProperties: false,
  required: ['kty', 'crv', 'x', 'kid', 'alg', 'use'],
  properties: {
    kty: { type: 'string' },
    crv: { type: 'string' },
    x: { type: 'string' },
    kid: { type: 'string' },
    alg: { type: 'string' },
    use: { type: 'string' },
    /**
     * On a rotated-out key only: the last moment it signed. Verifiers elsewhere (`bundle verify
     * --jwks`, the bundle page) trust it only for records issued no later, as the server does.
     */
    retired_at: { type: 'string', format: 'date-time' },
  },
} as const;

export function jwksRoutes(app: FastifyInstance, deps: { keyRing: KeyRing }): void {
  // Declared when the app boots, after the OpenAPI plugin, which learns routes as they are declared.
  void app.register(async (scope) => jwksRoute(scope, deps));
}

function jwksRoute(app: FastifyInstance, deps: { keyRing: KeyRing }): void {
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        operationId: 'getJwks',
        summary: 'The public keys: the signing key and those rotated out',
        description:
          'What verifies CSTs, policy envelopes and proof bundles anywhere (`bundle verify --jwks`). A rotated-out ' +
          'key carries `retired_at`: it signed nothing after that moment.',
        tags: ['proofs'],
        response: {
          200: {
            description: 'A JWK set of Ed25519 public keys',
            type: 'object',
            additionalProperties: false,
            required: ['keys'],
            properties: { keys: { type: 'array', items: jwkSchema } },
          },
          ...errorResponses([]),
        },
      },
    },
    async (_req, reply) => {
      reply.header('cache-control', 'public, max-age=300');
      return deps.keyRing.jwks;
    },
  );
}
