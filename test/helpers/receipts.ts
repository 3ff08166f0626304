import { sha256B64u } from '../../src/crypto/hash.js';
import { type Envelope, sealEnvelope } from '../../src/crypto/envelope.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import type { SigningKey } from '../../src/tokens/signing-key.js';
import { newKey } from './state.js';

/** Where a gateway binds its receipt: the job's run and the step's `token_claimed` event. */
export interface ReceiptBinding {
  run_id: string;
  event_hash_b64u: string;
}

/**
 * The causal span a receipt may declare (Claw Bureau's `binding.span_id` / `parent_span_id`).
 * In enforce mode clawverify wants all spans of a bundle in one graph with a root, so a test
 * job's receipts chain: each step's receipt names the previous step's span as its parent.
 */
export interface ReceiptSpan {
  span_id?: string;
  parent_span_id?: string;
}

/** A gateway receipt in the Claw Bureau shape, signed by `key` (a gateway's Ed25519 key). */
export function gatewayReceipt(
  key: SigningKey,
  binding: ReceiptBinding & ReceiptSpan,
  id: string,
): Envelope<unknown> {
  const payload = {
    receipt_version: '1',
    receipt_id: id,
    gateway_id: 'gw_test',
    provider: 'anthropic',
    model: 'claude-test',
    request_hash_b64u: sha256B64u(`request ${id}`),
    response_hash_b64u: sha256B64u(`response ${id}`),
    tokens_input: 10,
    tokens_output: 20,
    latency_ms: 123,
    timestamp: '2026-11-21T10:00:00.000Z',
    binding: { ...binding, nonce: `nonce_${id}` },
  };
  return sealEnvelope({
    type: 'gateway_receipt',
    payload,
    payloadHashB64u: bundlePayloadHash(payload),
    key,
    issuedAt: new Date('2026-11-21T10:00:01.000Z'),
  });
}

/** One gateway for a test file: engines trust its did (`gatewaySigners`), results carry its receipts. */
export const testGateway = newKey();

let counter = 0;
/**
 * A receipt from the test gateway for a claimed step (`claimToken` answers `runId` and
 * `eventHash`), declaring `span` when given.
 */
export function receiptFor(
  claim: { runId: string; eventHash: string },
  span: ReceiptSpan = {},
): Envelope<unknown> {
  counter += 1;
  return gatewayReceipt(
    testGateway,
    { run_id: claim.runId, event_hash_b64u: claim.eventHash, ...span },
    `rcpt_${String(counter).padStart(6, '0')}`,
  );
}
