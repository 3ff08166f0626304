import type { FastifyInstance } from 'fastify';
import type { KeyRing } from '../../tokens/key-ring.js';

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
  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            required: ['keys'],
            properties: { keys: { type: 'array', items: jwkSchema } },
          },
        },
      },
    },
    async (_req, reply) => {
      reply.header('cache-control', 'public, max-age=300');
      return deps.keyRing.jwks;
    },
  );
}
