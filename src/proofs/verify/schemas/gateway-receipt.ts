import { z } from 'zod';
import { b64u, dateTime, did, nonNegative, text } from './formats.js';
import { receiptBinding } from './receipt-binding.js';
import { bundledReceiptMetadata, gatewayReceiptMetadata } from './receipt-metadata.js';

function receiptPayload(metadata: typeof bundledReceiptMetadata) {
  return z.strictObject({
    receipt_version: z.literal('1'),
    receipt_id: text({ min: 1 }),
    gateway_id: text({ min: 1 }),
    provider: text({ min: 1 }),
    model: text({ min: 1 }),
    request_hash_b64u: b64u(),
    response_hash_b64u: b64u(),
    tokens_input: nonNegative(),
    tokens_output: nonNegative(),
    latency_ms: nonNegative(),
    timestamp: dateTime(),
    binding: receiptBinding.optional(),
    metadata: metadata.optional(),
  });
}

function receiptEnvelope(metadata: typeof bundledReceiptMetadata) {
  return z.strictObject({
    envelope_version: z.literal('1'),
    envelope_type: z.literal('gateway_receipt'),
    payload: receiptPayload(metadata),
    payload_hash_b64u: b64u(),
    hash_algorithm: z.enum(['SHA-256', 'BLAKE3']),
    signature_b64u: b64u(),
    algorithm: z.literal('Ed25519'),
    signer_did: did(),
    issued_at: dateTime(),
    expires_at: dateTime().optional(),
  });
}

/** A gateway receipt envelope as a proof bundle's `receipts[]` schema describes it. */
export const bundledGatewayReceipt = receiptEnvelope(bundledReceiptMetadata);

/**
 * A gateway receipt envelope as its own schema (`gateway_receipt_envelope.v1`) describes it:
 * the bundle's form with more named metadata keys. Claw Bureau checks both.
 */
export const gatewayReceiptEnvelope = receiptEnvelope(gatewayReceiptMetadata);
