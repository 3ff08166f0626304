import { fail, quote } from './check.js';
import { signatureFault } from './envelope.js';

interface CoSigned {
  payload_hash_b64u: string;
  co_signatures?: { signer_did: string; signature_b64u: string; role: string }[];
}

/**
 * Claw Bureau `co_signature.v1`: each co-signer's Ed25519 signature over the same
 * `payload_hash_b64u` as the primary signature. Returns how many were verified.
 */
export function checkCoSignatures(envelope: CoSigned, where: string): number {
  const list = envelope.co_signatures ?? [];
  for (const [i, co] of list.entries()) {
    if (signatureFault(co.signer_did, envelope.payload_hash_b64u, co.signature_b64u) !== null) {
      fail(
        'CO_SIGNATURE_INVALID',
        'CO_SIGNATURE_INVALID',
        `${where}.co_signatures[${i}] (${co.role}) does not verify as the signature of ${quote(co.signer_did)} over payload_hash_b64u`,
      );
    }
  }
  return list.length;
}
