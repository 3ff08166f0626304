import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/database.js';
import { getVerifiedPolicy } from '../../policy/registry.js';
import type { KeyRing } from '../../tokens/key-ring.js';
import { errorResponses, PARAM_ERRORS } from '../error-handler.js';

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
        operationId: 'getPolicyVersion',
        summary: 'A registered policy version (WPC), signed',
        description:
          'The stored payload is re-canonicalized, re-hashed and its signature checked on every read; a version ' +
          'that fails is never served (500 ERR_WPC_CORRUPTED).',
        tags: ['proofs'],
        params: {
          type: 'object',
          required: ['hash'],
          properties: {
            hash: {
              type: 'string',
              maxLength: 128,
              description: 'policy_hash_b64u: 43 base64url characters (SHA-256 of the JCS payload)',
            },
          },
        },
        response: {
          200: {
            description: 'The signed envelope of the version',
            type: 'object',
            additionalProperties: false,
            required: ['ok', 'policy_hash_b64u', 'envelope'],
            properties: {
              ok: { type: 'boolean' },
              policy_hash_b64u: { type: 'string' },
              envelope: envelopeSchema,
            },
          },
          ...errorResponses([
            ...PARAM_ERRORS,
            'ERR_WPC_HASH_MALFORMED',
            'ERR_WPC_NOT_FOUND',
            'ERR_WPC_CORRUPTED',
            'ERR_RATE_LIMITED',
          ]),
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
