import { sha256B64u } from '../crypto/hash.js';
import { canonicalJson } from '../crypto/jcs.js';
import type { Wpc } from './types.js';

export interface HashedPolicy {
  policy: Wpc;
  canonical: string;
  hash: string;
}

/** SPEC section 3: policy_hash_b64u = base64url_nopad(SHA-256(UTF-8(JCS(policy)))). */
export function hashPolicy(policy: Wpc): HashedPolicy {
  const canonical = canonicalJson(policy);
  return { policy, canonical, hash: sha256B64u(canonical) };
}
