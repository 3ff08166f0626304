import { fail, isRecord, type Passed } from './check.js';
import { checkCoSignatures } from './co-signatures.js';
import { payloadHash, signatureFault } from './envelope.js';
import type { Chain } from './event-chain.js';
import { checkChainBinding } from './receipt-binding.js';
import type { ToolReceiptEnvelope, ToolReceiptV1, ToolReceiptV2 } from './schemas/tool-receipt.js';

/**
 * A signed tool receipt: hash and primary signature, then its co-signatures. Tool receipts are
 * the agent's own account of its tool calls; neither Claw Bureau nor we allowlist their signers.
 */
function checkToolEnvelope(env: ToolReceiptEnvelope, where: string, now: Date): number {
  if (env.expires_at !== undefined && now.getTime() > Date.parse(env.expires_at))
    fail('TOOL_RECEIPT_EXPIRED', 'EXPIRED_TTL', `${where} expired at ${env.expires_at}`);
  if (payloadHash(env.payload) !== env.payload_hash_b64u)
    fail(
      'TOOL_RECEIPT_HASH_MISMATCH',
      'HASH_MISMATCH',
      `${where}: payload does not hash to payload_hash_b64u`,
    );
  if (signatureFault(env.signer_did, env.payload_hash_b64u, env.signature_b64u) !== null)
    fail(
      'TOOL_RECEIPT_SIGNATURE_INVALID',
      'SIGNATURE_INVALID',
      `${where}: the primary signature does not verify`,
    );
  return env.envelope_version === '2' ? checkCoSignatures(env, where) : 0;
}

/**
 * Every tool receipt (payload or envelope, v1 or v2, schema already checked): names the
 * bundle's agent, is bound to this run's chain, and its signatures hold.
 */
export function checkToolReceipts(
  receipts: unknown[] | undefined,
  agentDid: string,
  chain: Chain,
  now: Date,
): Passed {
  const list = receipts ?? [];
  let signed = 0;
  let coSigned = 0;
  for (const [i, entry] of list.entries()) {
    const where = `tool_receipts[${i}]`;
    const envelope = isRecord(entry) && 'envelope_version' in entry ? (entry as ToolReceiptEnvelope) : null;
    const payload = envelope ? envelope.payload : (entry as ToolReceiptV1 | ToolReceiptV2);
    if (payload.agent_did !== agentDid)
      fail(
        'TOOL_RECEIPT_INVALID',
        'PROOF_BUNDLE_AGENT_MISMATCH',
        `${where} names another agent than the bundle's`,
      );
    checkChainBinding(
      payload.binding,
      chain,
      where,
      'TOOL_RECEIPT_BINDING_MISMATCH',
      'RECEIPT_BINDING_MISMATCH',
    );
    if (envelope) {
      coSigned += checkToolEnvelope(envelope, where, now);
      signed += 1;
    }
  }
  if (list.length === 0) return { message: 'no tool receipts' };
  return {
    message: `${list.length} tool receipts of this agent bound to this run; ${signed} signed envelopes verify, with ${coSigned} co-signatures`,
  };
}
