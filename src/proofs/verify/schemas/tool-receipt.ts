import { z } from 'zod';
import { b64u, dateTime, did, nonNegative, oneOf, text } from './formats.js';
import { openBinding, receiptBinding } from './receipt-binding.js';

const RESULT_STATUS = z.enum(['success', 'error', 'timeout']);

/** Claw Bureau `co_signature.v1`: a further signature over a receipt envelope's payload hash. */
export const coSignature = z.strictObject({
  signature_b64u: b64u(),
  algorithm: z.literal('Ed25519'),
  signer_did: did(),
  issued_at: dateTime(),
  role: z.enum(['proxy', 'approver', 'auditor', 'supervisor']),
});

const disclosedLeaf = z
  .strictObject({
    type: z.enum(['string', 'number', 'boolean', 'null', 'array', 'object']),
    value: z.unknown(),
    salt_b64u: b64u(),
  })
  .refine((leaf) => 'value' in leaf, { message: 'value is required', path: ['value'] });

/** Claw Bureau `selective_disclosure.v1` (shape only: we do not verify disclosures). */
export const selectiveDisclosure = z.strictObject({
  disclosure_algorithm: z.literal('vir_v2_typed_lexicographical'),
  merkle_root_b64u: b64u(),
  redacted_leaf_hashes_b64u: z.array(b64u()),
  disclosed_leaves: z.record(z.string(), disclosedLeaf),
});

/** Claw Bureau `tool_receipt.v1`: the agent's own record of one tool call. */
export const toolReceiptV1 = z.strictObject({
  receipt_version: z.literal('1'),
  receipt_id: text({ min: 1 }),
  tool_name: text({ min: 1 }),
  tool_version: z.string().optional(),
  args_hash_b64u: text({ min: 1 }),
  result_hash_b64u: text({ min: 1 }),
  result_status: RESULT_STATUS.optional(),
  hash_algorithm: z.literal('SHA-256'),
  agent_did: text({ min: 1 }),
  timestamp: dateTime(),
  latency_ms: nonNegative(),
  binding: openBinding.optional(),
});

/** Claw Bureau `tool_receipt_envelope.v1`. */
export const toolReceiptEnvelopeV1 = z.strictObject({
  envelope_version: z.literal('1'),
  envelope_type: z.literal('tool_receipt'),
  payload: toolReceiptV1,
  payload_hash_b64u: text({ min: 1 }),
  hash_algorithm: z.literal('SHA-256'),
  signature_b64u: text({ min: 1 }),
  algorithm: z.literal('Ed25519'),
  signer_did: text({ min: 1 }),
  issued_at: dateTime(),
  expires_at: dateTime().optional(),
});

/** Claw Bureau `tool_receipt.v2`: salted hashes, optional selective disclosures. */
export const toolReceiptV2 = z.strictObject({
  receipt_version: z.literal('2'),
  receipt_id: text({ min: 1 }),
  tool_name: text({ min: 1 }),
  tool_version: z.string().optional(),
  args_hash_b64u: b64u(),
  result_hash_b64u: b64u(),
  result_status: RESULT_STATUS.optional(),
  hash_algorithm: z.enum(['SHA-256', 'BLAKE3']),
  agent_did: did(),
  timestamp: dateTime(),
  latency_ms: nonNegative(),
  binding: receiptBinding.optional(),
  args_salt_b64u: b64u(),
  result_salt_b64u: b64u(),
  args_disclosure: selectiveDisclosure.optional(),
  result_disclosure: selectiveDisclosure.optional(),
});

/** Claw Bureau `tool_receipt_envelope.v2`: may carry up to 16 co-signatures. */
export const toolReceiptEnvelopeV2 = z.strictObject({
  envelope_version: z.literal('2'),
  envelope_type: z.literal('tool_receipt'),
  payload: toolReceiptV2,
  payload_hash_b64u: b64u(),
  hash_algorithm: z.enum(['SHA-256', 'BLAKE3']),
  signature_b64u: b64u(),
  algorithm: z.literal('Ed25519'),
  signer_did: did(),
  issued_at: dateTime(),
  expires_at: dateTime().optional(),
  co_signatures: z.array(coSignature).max(16).optional(),
});

/** One entry of a bundle's `tool_receipts[]`: exactly one of the four forms. */
export const toolReceiptEntry = oneOf(
  [toolReceiptV1, toolReceiptEnvelopeV1, toolReceiptV2, toolReceiptEnvelopeV2],
  'tool_receipt (v1, v1 envelope, v2, v2 envelope)',
);

export type ToolReceiptV1 = z.infer<typeof toolReceiptV1>;
export type ToolReceiptV2 = z.infer<typeof toolReceiptV2>;
export type ToolReceiptEnvelope =
  z.infer<typeof toolReceiptEnvelopeV1> | z.infer<typeof toolReceiptEnvelopeV2>;
