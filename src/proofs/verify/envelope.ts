import { publicKeyFromDidKey, UnsafeEd25519KeyError } from '../../crypto/did-key.js';
import { fromB64u, sha256B64u } from '../../crypto/hash.js';
import { verifyEd25519 } from '../../tokens/signing-key.js';
import { type BundleTrust, fail, isRecord, type Passed, quote } from './check.js';
import { B64U } from './schemas/formats.js';

/** A proof bundle envelope whose nine fields are present (their shape is checked by the schema next). */
export interface BundleEnvelope {
  envelope_version: '1';
  envelope_type: 'proof_bundle';
  payload: Record<string, unknown>;
  payload_hash_b64u: string;
  hash_algorithm: 'SHA-256';
  signature_b64u: string;
  algorithm: 'Ed25519';
  signer_did: string;
  issued_at: string;
  expires_at?: string;
}

const FIELDS = [
  'envelope_version',
  'envelope_type',
  'payload',
  'payload_hash_b64u',
  'hash_algorithm',
  'signature_b64u',
  'algorithm',
  'signer_did',
  'issued_at',
] as const;

/** Claw Bureau's DID format test (did:key or did:web); decoding the key comes after the hash. */
export const DID_FORMAT = /^did:(key|web):[a-zA-Z0-9._%-]+$/;

/** SHA-256 over `JSON.stringify(payload)`: how Claw Bureau hashes bundle and receipt payloads. */
export function payloadHash(payload: unknown): string {
  return sha256B64u(JSON.stringify(payload));
}

const isDate = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));

/**
 * The envelope checks Claw Bureau makes before its schema, in its order, so that a bundle
 * failing several of them gets the same first reason: fields present, version, type,
 * algorithms, DID format, dates (expiry judged at `now`), base64url.
 */
export function checkEnvelopeFormat(envelope: unknown, now: Date): { value: BundleEnvelope } & Passed {
  if (!isRecord(envelope))
    fail('BUNDLE_ENVELOPE_MALFORMED', 'MALFORMED_ENVELOPE', 'envelope is not an object');
  const missing = FIELDS.filter((f) => !(f in envelope));
  if (missing.length > 0)
    fail('BUNDLE_ENVELOPE_MALFORMED', 'MALFORMED_ENVELOPE', `envelope lacks ${missing.join(', ')}`);
  const e = envelope;
  if (e.envelope_version !== '1')
    fail(
      'BUNDLE_ENVELOPE_MALFORMED',
      'UNKNOWN_ENVELOPE_VERSION',
      `envelope_version ${quote(e.envelope_version)} is not "1"`,
    );
  if (e.envelope_type !== 'proof_bundle')
    fail(
      'BUNDLE_ENVELOPE_TYPE_MISMATCH',
      'UNKNOWN_ENVELOPE_TYPE',
      `envelope_type ${quote(e.envelope_type)} is not "proof_bundle"`,
    );
  if (e.algorithm !== 'Ed25519')
    fail(
      'BUNDLE_UNSUPPORTED_ALGORITHM',
      'UNKNOWN_ALGORITHM',
      `algorithm ${quote(e.algorithm)} is not Ed25519`,
    );
  if (e.hash_algorithm === 'BLAKE3')
    fail('UNSUPPORTED_FEATURE', null, 'BLAKE3 payload hashes are not supported (only SHA-256)');
  if (e.hash_algorithm !== 'SHA-256')
    fail(
      'BUNDLE_UNSUPPORTED_ALGORITHM',
      'UNKNOWN_HASH_ALGORITHM',
      `hash_algorithm ${quote(e.hash_algorithm)} is not SHA-256`,
    );
  if (typeof e.signer_did !== 'string' || !DID_FORMAT.test(e.signer_did))
    fail(
      'BUNDLE_SIGNER_DID_INVALID',
      'INVALID_DID_FORMAT',
      `signer_did ${quote(e.signer_did)} is not a did:key or did:web DID`,
    );
  if (!isDate(e.issued_at))
    fail('BUNDLE_ENVELOPE_MALFORMED', 'MALFORMED_ENVELOPE', 'issued_at is not a date');
  if (e.expires_at !== undefined) {
    if (!isDate(e.expires_at))
      fail('BUNDLE_ENVELOPE_MALFORMED', 'MALFORMED_ENVELOPE', 'expires_at is not a date');
    if (now.getTime() > Date.parse(e.expires_at))
      fail(
        'BUNDLE_EXPIRED',
        'EXPIRED_TTL',
        `the bundle expired at ${quote(e.expires_at)} (now ${now.toISOString()})`,
      );
  }
  for (const field of ['payload_hash_b64u', 'signature_b64u'] as const) {
    const v = e[field];
    if (typeof v !== 'string' || !B64U.test(v))
      fail('BUNDLE_ENVELOPE_MALFORMED', 'MALFORMED_ENVELOPE', `${field} is not base64url`);
  }
  return {
    value: e as unknown as BundleEnvelope,
    message: `proof_bundle envelope v1, Ed25519 over SHA-256, signer ${e.signer_did}, issued ${quote(e.issued_at)}`,
  };
}

/** The envelope's hash is the hash of its payload as it stands. */
export function checkPayloadHash(env: BundleEnvelope): Passed {
  if (payloadHash(env.payload) !== env.payload_hash_b64u)
    fail('BUNDLE_HASH_MISMATCH', 'HASH_MISMATCH', 'payload does not hash to payload_hash_b64u');
  return { message: `payload hashes to ${env.payload_hash_b64u}` };
}

/**
 * Why an Ed25519 signature by a did:key does not hold, or null when it does: `unsafe_key` for
 * a key of small order (or non-canonical), under which forged signatures verify.
 */
export function signatureFault(
  did: string,
  message: string,
  signatureB64u: string,
): 'did' | 'unsafe_key' | 'signature' | null {
  let key: Uint8Array;
  try {
    key = publicKeyFromDidKey(did);
  } catch (err) {
    return err instanceof UnsafeEd25519KeyError ? 'unsafe_key' : 'did';
  }
  try {
    return verifyEd25519(key, message, fromB64u(signatureB64u)) ? null : 'signature';
  } catch {
    return 'signature';
  }
}

/** The signer's Ed25519 signature over the UTF-8 bytes of `payload_hash_b64u`. */
export function checkSignature(env: BundleEnvelope): Passed {
  const fault = signatureFault(env.signer_did, env.payload_hash_b64u, env.signature_b64u);
  if (fault === 'did')
    fail('BUNDLE_SIGNER_DID_INVALID', 'INVALID_DID_FORMAT', 'signer_did is not an Ed25519 did:key');
  if (fault === 'unsafe_key')
    // clawverify accepts such a key (its Ed25519 check does), hence no cbReason.
    fail(
      'BUNDLE_SIGNATURE_INVALID',
      null,
      'signer_did is an Ed25519 key of small order (or non-canonical): a signature by it proves nothing',
    );
  if (fault === 'signature')
    fail('BUNDLE_SIGNATURE_INVALID', 'SIGNATURE_INVALID', 'signature does not verify over payload_hash_b64u');
  return { message: `Ed25519 signature by ${env.signer_did} verifies` };
}

/**
 * Beyond Claw Bureau (which accepts any signer): a bundle counts only if its signer is
 * trusted at the time it says it was issued, so a self-consistent forgery fails here.
 */
export function checkSignerTrusted(env: BundleEnvelope, trust: BundleTrust): Passed {
  if (!trust.trustsSigner(env.signer_did, new Date(env.issued_at)))
    fail(
      'BUNDLE_SIGNER_UNTRUSTED',
      null,
      `bundle signer ${env.signer_did} is not trusted at ${quote(env.issued_at)}`,
    );
  return { message: `signer ${env.signer_did} is trusted at ${quote(env.issued_at)}` };
}

/** The payload names its signer as its agent (Claw Bureau CVF-US-022). */
export function checkAgent(env: BundleEnvelope, agentDid: string): Passed {
  if (!DID_FORMAT.test(agentDid))
    fail('AGENT_DID_MISMATCH', 'INVALID_DID_FORMAT', `payload agent_did ${quote(agentDid)} is not a did:key`);
  if (agentDid !== env.signer_did)
    fail('AGENT_DID_MISMATCH', 'INVALID_DID_FORMAT', 'payload agent_did is not the envelope signer');
  return { message: `agent_did is the envelope signer` };
}
