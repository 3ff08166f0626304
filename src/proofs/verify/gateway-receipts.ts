import { verifyEnvelope } from '../../crypto/envelope.js';
import { type BundleTrust, fail, type Passed } from './check.js';
import { payloadHash } from './envelope.js';
import type { Chain } from './event-chain.js';
import { checkChainBinding } from './receipt-binding.js';
import { gatewayReceiptEnvelope } from './schemas/gateway-receipt.js';
import { validate } from './schemas/validate.js';

/** Claw Bureau's bounds on a receipt's numbers (CVF-US-025). */
const MAX_TOKENS = 10_000_000;
const MAX_LATENCY_MS = 60 * 60 * 1000;

interface GatewayPayload {
  tokens_input: number;
  tokens_output: number;
  latency_ms: number;
  binding?: unknown;
}

const wholeUpTo = (n: number, max: number) => Number.isInteger(n) && n >= 0 && n <= max;

/**
 * Every gateway receipt: its own schema (`gateway_receipt_envelope.v1`), sane numbers, payload
 * hash, Ed25519 signature by an allowlisted gateway, and a binding to this run's chain.
 * Claw Bureau reports any of the first four as RECEIPT_VERIFICATION_FAILED.
 */
export function checkGatewayReceipts(
  receipts: unknown[] | undefined,
  chain: Chain,
  trust: BundleTrust,
): Passed {
  const list = receipts ?? [];
  for (const [i, r] of list.entries()) {
    const where = `receipts[${i}]`;
    const shape = validate(gatewayReceiptEnvelope, r, where);
    if (!shape.ok) fail('RECEIPT_ENVELOPE_MALFORMED', 'RECEIPT_VERIFICATION_FAILED', shape.message);
    const payload = (r as { payload: GatewayPayload }).payload;
    if (
      !wholeUpTo(payload.tokens_input, MAX_TOKENS) ||
      !wholeUpTo(payload.tokens_output, MAX_TOKENS) ||
      !wholeUpTo(payload.latency_ms, MAX_LATENCY_MS)
    ) {
      fail(
        'RECEIPT_ENVELOPE_MALFORMED',
        'RECEIPT_VERIFICATION_FAILED',
        `${where}: token counts must be whole numbers up to ${MAX_TOKENS}, latency_ms up to ${MAX_LATENCY_MS}`,
      );
    }
    const check = verifyEnvelope(r, {
      type: 'gateway_receipt',
      hashPayload: payloadHash,
      trustedSigners: trust.gatewaySigners,
    });
    if (!check.ok)
      fail(`RECEIPT_${check.reason}`, 'RECEIPT_VERIFICATION_FAILED', `${where}: ${check.message}`);
    checkChainBinding(payload.binding, chain, where, 'RECEIPT_BINDING_MISMATCH', 'RECEIPT_BINDING_MISMATCH');
  }
  return {
    message:
      list.length === 0
        ? 'no gateway receipts'
        : `${list.length} gateway receipts signed by allowlisted gateways, each bound to an event of this run`,
  };
}
