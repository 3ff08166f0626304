import {
  assertSafeEd25519Key,
  didKeyFromPublicKey,
  publicKeyFromDidKey,
  UnsafeEd25519KeyError,
} from '../crypto/did-key.js';
import { fromB64u } from '../crypto/hash.js';
import { AppError } from '../errors.js';
import type { BundleTrust } from './verify-bundle.js';

/**
 * Whom a reviewer trusts, and why: each bundle signer comes from a named source (a JWKS, a
 * `--trust` flag, an allowlist file, this server's key ring). A bundle never vouches for
 * itself: its own `signer_did` is trusted only when one of these sources names it.
 */
export interface TrustedSigner {
  did: string;
  /** Where the reviewer said to trust it, e.g. `jwks https://host/.well-known/jwks.json`. */
  source: string;
  /** Retired keys sign nothing later than this; null for a key trusted for anything. */
  retiredAt: Date | null;
}

export interface TrustedGateway {
  did: string;
  source: string;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** JWK members that only a private (or symmetric) key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/** Date-time as servers write it (RFC 3339, UTC or offset); anything else is not a date. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * The signers a JWKS vouches for: each Ed25519 key as its did:key, a key with `retired_at`
 * (published by `/.well-known/jwks.json` for rotated-out keys) only up to that moment. Any key
 * that is not an Ed25519 public key, is one of small order (it would vouch for forged
 * signatures), or has an unreadable date, refuses the whole set: a reviewer should not get a
 * verdict from a trust source that was only partly understood.
 */
export function signersFromJwks(jwks: unknown, source: string): TrustedSigner[] {
  const keys = isObject(jwks) ? jwks.keys : undefined;
  if (!Array.isArray(keys)) throw new AppError('ERR_KEY_INVALID', `${source} is not a JWKS: {"keys":[…]}`);
  if (keys.length === 0) throw new AppError('ERR_KEY_INVALID', `${source} lists no keys`);
  return keys.map((k, i): TrustedSigner => {
    const bad = (why: string) => new AppError('ERR_KEY_INVALID', `${source}: keys[${i}] ${why}`);
    if (!isObject(k)) throw bad('is not an object');
    // Named, never echoed: a private key published by mistake is not printed again here.
    if (PRIVATE_MEMBERS.some((m) => m in k)) throw bad('holds private key material');
    if (k.kty !== 'OKP' || k.crv !== 'Ed25519') throw bad('is not an Ed25519 key (kty OKP, crv Ed25519)');
    if (k.alg !== undefined && k.alg !== 'EdDSA' && k.alg !== 'Ed25519') throw bad('is not for EdDSA');
    if (k.use !== undefined && k.use !== 'sig') throw bad('is not a signing key (use)');
    let raw: Uint8Array;
    try {
      raw = fromB64u(typeof k.x === 'string' ? k.x : '');
    } catch {
      throw bad('has an x that is not base64url');
    }
    if (raw.length !== 32) throw bad('has an x that is not a 32-byte key');
    try {
      assertSafeEd25519Key(raw);
    } catch (err) {
      throw bad(`is not a usable signing key: ${(err as Error).message}`);
    }
    let retiredAt: Date | null = null;
    if (k.retired_at !== undefined) {
      const at =
        typeof k.retired_at === 'string' && RFC3339.test(k.retired_at) ? Date.parse(k.retired_at) : NaN;
      if (Number.isNaN(at)) throw bad('has a retired_at that is not an RFC 3339 date-time');
      retiredAt = new Date(at);
    }
    return { did: didKeyFromPublicKey(raw), source, retiredAt };
  });
}

/**
 * A did:key given by hand (`--trust`, `--gateway`, an allowlist): Ed25519 only, and a key
 * under which signatures mean something (not of small order), or a named error.
 */
export function checkedDidKey(did: unknown, source: string): string {
  try {
    if (typeof did !== 'string') throw new TypeError('not a string');
    publicKeyFromDidKey(did);
    return did;
  } catch (err) {
    if (err instanceof UnsafeEd25519KeyError)
      throw new AppError('ERR_VALIDATION', `${source}: not a usable signing key: ${err.message}`);
    throw new AppError('ERR_VALIDATION', `${source}: not an Ed25519 did:key (did:key:z6Mk…)`);
  }
}

/**
 * A Claw Bureau allowlist (`agent_did`, `gateway_receipt_signer_dids`, as in its conformance
 * vectors), plus our `bundle_signer_dids`. Every DID must be an Ed25519 did:key.
 */
export function signersFromAllowlist(
  value: unknown,
  source: string,
): { signers: TrustedSigner[]; gateways: TrustedGateway[] } {
  if (!isObject(value)) throw new AppError('ERR_VALIDATION', `${source} is not a JSON object`);
  const list = (key: string): string[] => {
    const v = value[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new AppError('ERR_VALIDATION', `${source}: ${key} must be an array`);
    return v.map((d, i) => checkedDidKey(d, `${source}: ${key}[${i}]`));
  };
  const signers = [
    ...(value.agent_did === undefined ? [] : [checkedDidKey(value.agent_did, `${source}: agent_did`)]),
    ...list('bundle_signer_dids'),
  ];
  return {
    signers: signers.map((did) => ({ did, source, retiredAt: null })),
    gateways: list('gateway_receipt_signer_dids').map((did) => ({ did, source })),
  };
}

/**
 * The verifier's trust from the reviewer's sources: a signer is trusted when any source trusts
 * it at the bundle's `issued_at` (a retired key only up to its retirement).
 */
export function bundleTrust(
  signers: readonly TrustedSigner[],
  gateways: readonly TrustedGateway[],
): BundleTrust {
  return {
    trustsSigner: (did, at) =>
      signers.some((s) => s.did === did && (s.retiredAt === null || at.getTime() <= s.retiredAt.getTime())),
    gatewaySigners: new Set(gateways.map((g) => g.did)),
  };
}
