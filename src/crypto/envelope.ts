import { type SigningKey, signBytes, verifyEd25519 } from '../tokens/signing-key.js';
import { publicKeyFromDidKey } from './did-key.js';
import { fromB64u } from './hash.js';

export type EnvelopeType = 'work_policy_contract' | 'proof_bundle' | 'gateway_receipt';

/** Claw Bureau signed envelope: Ed25519 over the UTF-8 bytes of `payload_hash_b64u`. */
export interface Envelope<P, T extends EnvelopeType = EnvelopeType> {
  envelope_version: '1';
  envelope_type: T;
  payload: P;
  payload_hash_b64u: string;
  hash_algorithm: 'SHA-256';
  signature_b64u: string;
  algorithm: 'Ed25519';
  signer_did: string;
  issued_at: string;
}

export function sealEnvelope<P, T extends EnvelopeType>(args: {
  type: T;
  payload: P;
  payloadHashB64u: string;
  key: SigningKey;
  issuedAt: Date;
}): Envelope<P, T> {
  return {
    envelope_version: '1',
    envelope_type: args.type,
    payload: args.payload,
    payload_hash_b64u: args.payloadHashB64u,
    hash_algorithm: 'SHA-256',
    signature_b64u: Buffer.from(signBytes(args.key, args.payloadHashB64u)).toString('base64url'),
    algorithm: 'Ed25519',
    signer_did: args.key.did,
    issued_at: args.issuedAt.toISOString(),
  };
}

export type EnvelopeFailure =
  | 'ENVELOPE_MALFORMED'
  | 'ENVELOPE_TYPE_MISMATCH'
  | 'UNSUPPORTED_ALGORITHM'
  | 'HASH_MISMATCH'
  | 'SIGNER_DID_INVALID'
  | 'SIGNER_UNTRUSTED'
  | 'SIGNATURE_INVALID';

export type EnvelopeCheck = { ok: true } | { ok: false; reason: EnvelopeFailure; message: string };

const B64U = /^[A-Za-z0-9_-]+$/;

/**
 * Checks shape, algorithm, payload hash and signature of an envelope. The caller supplies
 * how the payload is hashed (JCS for WPCs, the payload's own key order for bundles) and,
 * optionally, which signers it trusts.
 */
export function verifyEnvelope(
  envelope: unknown,
  opts: {
    type: EnvelopeType;
    hashPayload: (payload: unknown) => string;
    trustedSigners?: ReadonlySet<string>;
  },
): EnvelopeCheck {
  const fail = (reason: EnvelopeFailure, message: string): EnvelopeCheck => ({ ok: false, reason, message });
  if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) {
    return fail('ENVELOPE_MALFORMED', 'envelope is not an object');
  }
  const e = envelope as Record<string, unknown>;
  if (e.envelope_version !== '1') return fail('ENVELOPE_MALFORMED', 'envelope_version must be "1"');
  if (e.envelope_type !== opts.type) {
    return fail('ENVELOPE_TYPE_MISMATCH', `envelope_type must be "${opts.type}"`);
  }
  if (e.hash_algorithm !== 'SHA-256' || e.algorithm !== 'Ed25519') {
    return fail('UNSUPPORTED_ALGORITHM', 'only SHA-256 and Ed25519 are accepted');
  }
  for (const field of ['payload_hash_b64u', 'signature_b64u'] as const) {
    const v = e[field];
    if (typeof v !== 'string' || !B64U.test(v))
      return fail('ENVELOPE_MALFORMED', `${field} must be base64url`);
  }
  if (typeof e.signer_did !== 'string' || typeof e.issued_at !== 'string' || !('payload' in e)) {
    return fail('ENVELOPE_MALFORMED', 'signer_did, issued_at and payload are required');
  }
  if (Number.isNaN(Date.parse(e.issued_at)))
    return fail('ENVELOPE_MALFORMED', 'issued_at is not a date-time');
  let actualHash: string;
  try {
    actualHash = opts.hashPayload(e.payload);
  } catch {
    return fail('ENVELOPE_MALFORMED', 'payload cannot be hashed');
  }
  if (actualHash !== e.payload_hash_b64u)
    return fail('HASH_MISMATCH', 'payload does not match payload_hash_b64u');
  let signerKey: Uint8Array;
  try {
    signerKey = publicKeyFromDidKey(e.signer_did);
  } catch {
    return fail('SIGNER_DID_INVALID', 'signer_did is not an Ed25519 did:key');
  }
  if (opts.trustedSigners && !opts.trustedSigners.has(e.signer_did)) {
    return fail('SIGNER_UNTRUSTED', 'signer_did is not a trusted signer');
  }
  let signature: Uint8Array;
  try {
    signature = fromB64u(e.signature_b64u as string);
  } catch {
    return fail('SIGNATURE_INVALID', 'signature_b64u is not canonical base64url');
  }
  if (!verifyEd25519(signerKey, e.payload_hash_b64u as string, signature)) {
    return fail('SIGNATURE_INVALID', 'signature does not verify over payload_hash_b64u');
  }
  return { ok: true };
}
