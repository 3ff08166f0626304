import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/database.js';
import { getVerifiedPolicy } from '../../policy/registry.js';
import type { KeyRing } from '../../tokens/key-ring.js';
import { errorBodySchema } from '../error-handler.js';

const envelopeSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'envelope_version',
    'envelope_type',
    'payload',
    'payload_hash_b64u',
    'hash_algorithm',
    'signature_b64u',
    'algorithm',
    'signer_did',
    'issued_at',
  ],
  properties: {
    envelope_version: { type: 'string' },
    envelope_type: { type: 'string' },
    payload: { type: 'object', additionalProperties: true },
    payload_hash_b64u: { type: 'string' },
    hash_algorithm: { type: 'string' },
    signature_b64u: { type: 'string' },
    algorithm: { type: 'string' },
    signer_did: { type: 'string' },
    issued_at: { type: 'string' },
  },
} as const;

export function wpcRoutes(app: FastifyInstance, deps: { db: Db; keyRing: KeyRing }): void {
  app.get<{ Params: { hash: string } }>(
    '/v1/wpc/:hash',
    {
      schema: {
        params: {
          type: 'object',
          required: ['hash'],
          properties: { hash: { type: 'string', maxLength: 128 } },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            required: ['ok', 'policy_hash_b64u', 'envelope'],
            properties: {
              ok: { type: 'boolean' },
              policy_hash_b64u: { type: 'string' },
              envelope: envelopeSchema,
            },
          },
          '4xx': errorBodySchema,
          '5xx': errorBodySchema,
        },
      },
    },
    async (req, reply) => {
      // Re-hashed and signature-checked on every read: the database is not trusted blindly.
      const envelope = await getVerifiedPolicy(deps.db, req.params.hash, deps.keyRing.trusts);
      reply.header('cache-control', 'public, max-age=31536000, immutable');
      return { ok: true, policy_hash_b64u: envelope.payload_hash_b64u, envelope };
    },
  );
}
