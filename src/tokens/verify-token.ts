import { createPublicKey, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import { AppError } from '../errors.js';
import { fromB64u } from '../crypto/hash.js';
import { didKeyFromPublicKey } from '../crypto/did-key.js';
import { CST_CLAIM_NAMES, type CstClaims, tokenScopeHash } from './cst-claims.js';
import type { KeyRing } from './key-ring.js';

/** Small allowance for clocks that disagree between the bot and the gateway. */
export const CLOCK_SKEW_SECONDS = 30;
export const MAX_TOKEN_LENGTH = 4096;

export interface TokenVerifier {
  verify(compact: string, opts: { now: Date; audience?: string }): Promise<CstClaims>;
}

/**
 * Strict CST verification: only EdDSA, only kids of the bot's key ring (a retired key only
 * for tokens issued before its retirement), `typ: JWT`, audience when the caller names one,
 * expiry with `CLOCK_SKEW_SECONDS`, exactly the CST claim set, and a scope hash that matches
 * the claims. Revocation and single use are the database's part (see token-service).
 */
export function tokenVerifier(keyRing: KeyRing): TokenVerifier {
  const keys = new Map<string, { key: KeyObject; did: string }>();
  for (const jwk of [keyRing.active.publicJwk, ...keyRing.retired]) {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
    keys.set(jwk.kid, { key, did: didKeyFromPublicKey(fromB64u(jwk.x)) });
  }
  const invalid = (message: string, cause?: unknown) => new AppError('ERR_TOKEN_INVALID', message, { cause });

  return {
    async verify(compact, { now, audience }) {
      if (typeof compact !== 'string' || compact.length > MAX_TOKEN_LENGTH)
        throw invalid('token is malformed');
      let header;
      try {
        header = decodeProtectedHeader(compact);
      } catch (err) {
        throw invalid('token is malformed', err);
      }
      if (header.alg !== 'EdDSA') throw invalid('only EdDSA tokens are accepted');
      const entry = typeof header.kid === 'string' ? keys.get(header.kid) : undefined;
      if (!entry) throw invalid('token was not signed by a known key');
      let payload: Record<string, unknown>;
      try {
        ({ payload } = await jwtVerify(compact, entry.key, {
          algorithms: ['EdDSA'],
          typ: 'JWT',
          currentDate: now,
          clockTolerance: CLOCK_SKEW_SECONDS,
          requiredClaims: ['iat', 'exp', 'jti', 'sub', 'aud'],
          ...(audience === undefined ? {} : { audience }),
        }));
      } catch (err) {
        if (err instanceof joseErrors.JWTExpired)
          throw new AppError('ERR_TOKEN_EXPIRED', 'token has expired');
        throw invalid(
          err instanceof joseErrors.JWTClaimValidationFailed
            ? `token claim ${err.claim} is not acceptable`
            : 'token signature or format is invalid',
          err,
        );
      }
      const extra = Object.keys(payload).filter((k) => !(CST_CLAIM_NAMES as readonly string[]).includes(k));
      if (extra.length > 0) throw invalid('token carries claims a CST must not have');
      const c = payload as unknown as CstClaims;
      const wellTyped =
        c.token_version === '1' &&
        typeof c.sub === 'string' &&
        typeof c.aud === 'string' &&
        Array.isArray(c.scope) &&
        c.scope.length > 0 &&
        c.scope.every((s) => typeof s === 'string') &&
        Number.isInteger(c.iat) &&
        Number.isInteger(c.exp) &&
        typeof c.jti === 'string' &&
        typeof c.nonce === 'string' &&
        typeof c.mission_id === 'string' &&
        typeof c.policy_hash_b64u === 'string' &&
        typeof c.token_scope_hash_b64u === 'string';
      if (!wellTyped) throw invalid('token claims do not follow the CST schema');
      if (!keyRing.trusts(entry.did, new Date(c.iat * 1000))) {
        throw invalid('token was issued after its signing key was retired');
      }
      if (c.iat > Math.floor(now.getTime() / 1000) + CLOCK_SKEW_SECONDS)
        throw invalid('token is issued in the future');
      if (tokenScopeHash(c) !== c.token_scope_hash_b64u)
        throw invalid('token_scope_hash_b64u does not match the claims');
      return c;
    },
  };
}
