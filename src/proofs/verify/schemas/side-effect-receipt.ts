import { z } from 'zod';
import { anyObject, dateTime, did, nonNegative, text } from './formats.js';

/**
 * A side-effect receipt as a proof bundle's `side_effect_receipts[]` schema describes it.
 * (Claw Bureau's standalone `side_effect_receipt.v1` names different digest fields and is
 * never applied to bundles by their verifier; we follow the bundle's schema.)
 */
export const bundledSideEffectReceipt = z.looseObject({
  receipt_version: z.literal('1'),
  receipt_id: text({ min: 1 }),
  effect_class: z.enum(['network_egress', 'filesystem_write', 'external_api_write']),
  target_digest: z.string().optional(),
  request_digest: z.string().optional(),
  response_digest: z.string().optional(),
  hash_algorithm: z.enum(['SHA-256', 'BLAKE3']),
  vendor_id: z.string().optional(),
  bytes_written: nonNegative().optional(),
  agent_did: did(),
  timestamp: dateTime(),
  binding: anyObject().optional(),
});
