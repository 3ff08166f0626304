import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { type CstClaims, type TokenScope, tokenHash, tokenScopeHash } from './cst-claims.js';
import type { SigningKey } from './signing-key.js';

export interface IssuedToken {
  compact: string;
  claims: CstClaims;
  tokenHash: string;
  kid: string;
}

/** Signs a CST: EdDSA, `typ: JWT`, the key's `kid`; TTL is the caller's (already capped by policy). */
export async function issueToken(args: {
  key: SigningKey;
  scope: TokenScope & { aud: string };
  issuedAt: Date;
  ttlSeconds: number;
}): Promise<IssuedToken> {
  if (!Number.isInteger(args.ttlSeconds) || args.ttlSeconds <= 0) {
    throw new RangeError('CST TTL must be a positive whole number of seconds');
  }
  const iat = Math.floor(args.issuedAt.getTime() / 1000);
  const claims: CstClaims = {
    token_version: '1',
    sub: args.scope.sub,
    aud: args.scope.aud,
    scope: [...args.scope.scope],
    iat,
    exp: iat + args.ttlSeconds,
    jti: randomUUID(),
    nonce: randomBytes(16).toString('base64url'),
    mission_id: args.scope.mission_id,
    policy_hash_b64u: args.scope.policy_hash_b64u,
    token_scope_hash_b64u: tokenScopeHash(args.scope),
  };
  const compact = await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: args.key.kid })
    .sign(args.key.privateKey);
  return { compact, claims, tokenHash: tokenHash(compact), kid: args.key.kid };
}
