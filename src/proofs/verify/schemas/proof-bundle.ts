import { z } from 'zod';
import { anyObject, b64u, dateTime, did, text } from './formats.js';
import { UNEVALUATED_COMPONENTS } from '../unevaluated.js';

/** The signed envelope around a proof bundle (Claw Bureau `proof_bundle_envelope.v1`), payload aside. */
export const proofBundleEnvelope = z.strictObject({
  envelope_version: z.literal('1'),
  envelope_type: z.literal('proof_bundle'),
  payload: anyObject(),
  payload_hash_b64u: b64u(),
  hash_algorithm: z.enum(['SHA-256', 'BLAKE3']),
  signature_b64u: b64u(),
  algorithm: z.literal('Ed25519'),
  signer_did: did(),
  issued_at: dateTime(),
  expires_at: dateTime().optional(),
});

/** The components of which `proof_bundle.v1` wants at least one. */
const EVIDENCE = [
  'urm',
  'event_chain',
  'receipts',
  'vir_receipts',
  'web_receipts',
  'binary_semantic_evidence_attestations',
  'tool_receipts',
  'side_effect_receipts',
  'human_approval_receipts',
  'delegation_receipts',
  'attestations',
] as const;

const unevaluated = Object.fromEntries(
  Object.keys(UNEVALUATED_COMPONENTS).map((k) => [k, z.unknown().optional()]),
) as Record<keyof typeof UNEVALUATED_COMPONENTS, z.ZodOptional<z.ZodUnknown>>;

/**
 * The top level of a proof bundle payload (Claw Bureau `proof_bundle.v1`). Each receipt
 * array's entries are validated by their own schemas, one by one.
 */
export const proofBundlePayload = z
  .strictObject({
    bundle_version: z.literal('1'),
    bundle_id: text({ min: 1 }),
    agent_did: did(),
    eip8004_agent_id: text({ pattern: /^[0-9]+$/ }).optional(),
    eip8004_registry: text({ pattern: /^eip155:[0-9]+:0x[0-9a-fA-F]{40}$/ }).optional(),
    event_chain: z.array(z.unknown()).min(1).optional(),
    receipts: z.array(z.unknown()).min(1).optional(),
    tool_receipts: z.array(z.unknown()).max(1000).optional(),
    side_effect_receipts: z.array(z.unknown()).max(1000).optional(),
    human_approval_receipts: z.array(z.unknown()).max(1000).optional(),
    metadata: z
      .looseObject({
        harness: z
          .looseObject({
            id: text({ min: 1 }),
            version: text({ min: 1 }),
            runtime: z.string().optional(),
            config_hash_b64u: b64u().optional(),
          })
          .optional(),
      })
      .optional(),
    ...unevaluated,
  })
  .refine((p) => EVIDENCE.some((k) => p[k] !== undefined), {
    message: `must carry at least one of ${EVIDENCE.join(', ')}`,
  });
