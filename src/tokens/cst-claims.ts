import { jcsHashB64u, sha256Hex } from '../crypto/hash.js';

/** The claims of a job-scoped CST (Claw Bureau `scoped_token_claims.v1`, SPEC section 4); no others. */
export interface CstClaims {
  token_version: '1';
  sub: string;
  aud: string;
  scope: string[];
  iat: number;
  exp: number;
  jti: string;
  nonce: string;
  mission_id: string;
  policy_hash_b64u: string;
  token_scope_hash_b64u: string;
}

export const CST_CLAIM_NAMES: readonly (keyof CstClaims)[] = [
  'token_version',
  'sub',
  'aud',
  'scope',
  'iat',
  'exp',
  'jti',
  'nonce',
  'mission_id',
  'policy_hash_b64u',
  'token_scope_hash_b64u',
];

const sortedUnique = (values: readonly string[]) => [...new Set(values)].sort();

/** The authorization-relevant part of a CST; stable across re-issuance (no iat/exp/jti/nonce). */
export interface TokenScope {
  sub: string;
  aud: string | readonly string[];
  scope: readonly string[];
  policy_hash_b64u: string;
  mission_id: string;
}

/**
 * token_scope_hash_b64u = b64u(SHA-256(JCS({token_version, sub, aud[] sorted unique,
 * scope[] sorted unique, policy_hash_b64u, mission_id}))).
 */
export function tokenScopeHash(s: TokenScope): string {
  return jcsHashB64u({
    token_version: '1',
    sub: s.sub,
    aud: sortedUnique(typeof s.aud === 'string' ? [s.aud] : s.aud),
    scope: sortedUnique(s.scope),
    policy_hash_b64u: s.policy_hash_b64u,
    mission_id: s.mission_id,
  });
}

/** The scope of a step's CST: step, tool and plan, plus the policy's extra scopes. */
export function stepScope(
  step: { id: string; tool: string },
  planHashB64u: string,
  extra: readonly string[] = [],
) {
  return sortedUnique([`step:${step.id}`, `tool:${step.tool}`, `plan:${planHashB64u}`, ...extra]);
}

export function missionId(jobId: number): string {
  return `job:${jobId}`;
}

/** token_hash: lowercase hex SHA-256 of the compact token, the revocation key. */
export function tokenHash(compact: string): string {
  return sha256Hex(compact);
}
