import { sha256B64u } from '../crypto/hash.js';
import { canonicalJson } from '../crypto/jcs.js';
import type { Wpc, WpcPayload } from './types.js';
import { toWpcPayload } from './wpc-payload.js';

export interface HashedPolicy {
  /** The approval policy as written. */
  policy: Wpc;
  /** What is signed: the Claw Bureau WPC v1 payload carrying it. */
  payload: WpcPayload;
  /** JCS of the payload: the exact text hashed and stored. */
  canonical: string;
  hash: string;
}

/**
 * SPEC section 3: policy_hash_b64u = base64url_nopad(SHA-256(UTF-8(JCS(payload)))), over the
 * WPC v1 payload, so the one hash pins approvals here and constrains Claw Bureau's gateway.
 */
export function hashPolicy(policy: Wpc): HashedPolicy {
  const payload = toWpcPayload(policy);
  const canonical = canonicalJson(payload);
  return { policy, payload, canonical, hash: sha256B64u(canonical) };
}
