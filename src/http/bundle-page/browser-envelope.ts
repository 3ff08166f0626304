/**
 * Claw Bureau envelopes in the page's verifier (the bundle's and each gateway receipt's): their
 * format, as strict as the server's `checkEnvelopeFormat` and envelope schemas, then payload
 * hash, signer did:key and Ed25519 signature (WebCrypto), with the server's reasons. Inlined
 * into the page (see page-script.ts): imports only the page's other inlined modules.
 */
import {
  b64u,
  failWith,
  fromB64u,
  isDateTime,
  isObject,
  type Obj,
  quote,
  unavailable,
} from './browser-common.js';
import { unsafeEd25519Key } from '../../crypto/unsafe-ed25519-key.js';

/** Where an envelope stands and how it is judged. */
export interface EnvelopeRules {
  type: 'proof_bundle' | 'gateway_receipt';
  /** Reason prefix: BUNDLE or RECEIPT. */
  prefix: string;
  /** Message prefix, e.g. `receipts[2]: `. */
  where: string;
  /** When to judge `expires_at` at (the bundle's); null where the server does not judge it. */
  now: Date | null;
}

/** The envelope's fields (`proof_bundle_envelope.v1`, `gateway_receipt_envelope.v1`): no others. */
const REQUIRED = [
  'envelope_version',
  'envelope_type',
  'payload',
  'payload_hash_b64u',
  'hash_algorithm',
  'signature_b64u',
  'algorithm',
  'signer_did',
  'issued_at',
];
const FIELDS = [...REQUIRED, 'expires_at'];

/** Claw Bureau's DID format test (did:key or did:web), as the server's DID_FORMAT. */
const DID_FORMAT = /^did:(key|web):[a-zA-Z0-9._%-]+$/;

const B64U_TEXT = /^[A-Za-z0-9_-]{8,}$/;

/**
 * The envelope's format in the server's order, so that an envelope failing several checks gets
 * the same first reason: fields present, version, type, algorithms, DID format, dates (an
 * expired bundle fails), base64url, then no field the schema does not name.
 */
export function checkEnvelopeFormat(envelope: unknown, rules: EnvelopeRules): Obj {
  const fail = (reason: string, message: string): never =>
    failWith(`${rules.prefix}_${reason}`, `${rules.where}${message}`);
  if (!isObject(envelope)) fail('ENVELOPE_MALFORMED', 'envelope is not an object');
  const e = envelope as Obj;
  const missing = REQUIRED.filter((f) => !(f in e));
  if (missing.length > 0) fail('ENVELOPE_MALFORMED', `envelope lacks ${missing.join(', ')}`);
  if (e.envelope_version !== '1')
    fail('ENVELOPE_MALFORMED', `envelope_version ${quote(e.envelope_version)} is not "1"`);
  if (e.envelope_type !== rules.type)
    fail('ENVELOPE_TYPE_MISMATCH', `envelope_type ${quote(e.envelope_type)} is not "${rules.type}"`);
  if (e.algorithm !== 'Ed25519')
    fail('UNSUPPORTED_ALGORITHM', `algorithm ${quote(e.algorithm)} is not Ed25519`);
  if (e.hash_algorithm === 'BLAKE3')
    failWith('UNSUPPORTED_FEATURE', `${rules.where}BLAKE3 payload hashes are not supported (only SHA-256)`);
  if (e.hash_algorithm !== 'SHA-256')
    fail('UNSUPPORTED_ALGORITHM', `hash_algorithm ${quote(e.hash_algorithm)} is not SHA-256`);
  if (typeof e.signer_did !== 'string' || !DID_FORMAT.test(e.signer_did))
    fail('SIGNER_DID_INVALID', `signer_did ${quote(e.signer_did)} is not a did:key or did:web DID`);
  if (!isDateTime(e.issued_at)) fail('ENVELOPE_MALFORMED', 'issued_at is not a date');
  if (e.expires_at !== undefined) {
    if (!isDateTime(e.expires_at)) fail('ENVELOPE_MALFORMED', 'expires_at is not a date');
    if (rules.now && rules.now.getTime() > Date.parse(String(e.expires_at)))
      fail('EXPIRED', `the bundle expired at ${quote(e.expires_at)} (now ${rules.now.toISOString()})`);
  }
  for (const field of ['payload_hash_b64u', 'signature_b64u']) {
    if (typeof e[field] !== 'string' || !B64U_TEXT.test(e[field] as string))
      fail('ENVELOPE_MALFORMED', `${field} is not base64url`);
  }
  const unknown = Object.keys(e).filter((k) => !FIELDS.includes(k));
  if (unknown.length > 0)
    fail(
      'ENVELOPE_MALFORMED',
      `envelope has fields its schema does not allow: ${unknown.map(quote).join(', ')}`,
    );
  if (!isObject(e.payload)) fail('ENVELOPE_MALFORMED', 'payload is not an object');
  return e;
}

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

/**
 * The base58btc text of an Ed25519 did:key (multicodec 0xed01 and 32 key bytes: 34 bytes,
 * whatever their value, take 47 digits). Checked before decoding, which costs time quadratic
 * in the length: a signer_did of 100 000 digits would hold the page for seconds.
 */
const ED25519_DID_DIGITS = 47;

function base58Decode(text: string): Uint8Array {
  let n = 0n;
  for (const ch of text) {
    const digit = BASE58.indexOf(ch);
    if (digit < 0) throw new TypeError('not base58');
    n = n * 58n + BigInt(digit);
  }
  const out: number[] = [];
  for (; n > 0n; n /= 256n) out.unshift(Number(n % 256n));
  for (const ch of text) {
    if (ch !== '1') break;
    out.unshift(0);
  }
  return Uint8Array.from(out);
}

/** The raw Ed25519 key of a did:key (multicodec 0xed01, base58btc), as `publicKeyFromDidKey`. */
export function publicKeyFromDidKey(did: string): Uint8Array {
  const match = /^did:key:z([1-9A-HJ-NP-Za-km-z]+)$/.exec(did);
  if (!match) throw new TypeError('not a base58btc did:key');
  if (match[1]!.length !== ED25519_DID_DIGITS) throw new TypeError('not an Ed25519 did:key');
  const bytes = base58Decode(match[1]!);
  if (bytes.length !== 34 || bytes[0] !== 0xed || bytes[1] !== 0x01)
    throw new TypeError('not an Ed25519 did:key');
  return bytes.slice(2);
}

/** Ed25519 over the UTF-8 bytes of `message`; a browser without Ed25519 is "unavailable", not a fail. */
async function verifyEd25519(
  publicKey: Uint8Array,
  message: string,
  signature: Uint8Array,
): Promise<boolean> {
  let key;
  try {
    key = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  } catch (err) {
    if ((err as { name?: string }).name === 'NotSupportedError') {
      unavailable('this browser has no Ed25519 in WebCrypto');
    }
    return false;
  }
  try {
    return await crypto.subtle.verify({ name: 'Ed25519' }, key, signature, new TextEncoder().encode(message));
  } catch {
    return false;
  }
}

/**
 * A well-formed envelope's payload hash (computed by `hash`), signer did:key and signature, in
 * `verifyEnvelope`'s order and with its reasons. Answers the signer's raw public key.
 */
export async function checkEnvelopeSignature(
  e: Obj,
  rules: EnvelopeRules,
  hash: (payload: unknown) => Promise<string>,
  allowedSigners: string[] | null,
): Promise<Uint8Array> {
  const fail = (reason: string, message: string): never =>
    failWith(`${rules.prefix}_${reason}`, `${rules.where}${message}`);
  let actual = '';
  try {
    actual = await hash(e.payload);
  } catch {
    fail('ENVELOPE_MALFORMED', 'payload cannot be hashed');
  }
  if (actual !== e.payload_hash_b64u) fail('HASH_MISMATCH', 'payload does not match payload_hash_b64u');
  let publicKey: Uint8Array = new Uint8Array();
  try {
    publicKey = publicKeyFromDidKey(String(e.signer_did));
  } catch {
    fail('SIGNER_DID_INVALID', 'signer_did is not an Ed25519 did:key');
  }
  if (unsafeEd25519Key(publicKey) !== null) {
    // The server's reasons: a bundle's checkSignature calls it a signature that proves
    // nothing; a receipt's verifyEnvelope, a signer that is no usable Ed25519 did:key.
    if (rules.prefix === 'BUNDLE')
      fail(
        'SIGNATURE_INVALID',
        'signer_did is an Ed25519 key of small order (or non-canonical): a signature by it proves nothing',
      );
    fail('SIGNER_DID_INVALID', 'signer_did is not an Ed25519 did:key');
  }
  if (allowedSigners && !allowedSigners.includes(String(e.signer_did))) {
    fail('SIGNER_UNTRUSTED', 'signer_did is not a trusted signer');
  }
  let signature: Uint8Array = new Uint8Array();
  try {
    signature = fromB64u(String(e.signature_b64u));
  } catch {
    fail('SIGNATURE_INVALID', 'signature_b64u is not canonical base64url');
  }
  if (!(await verifyEd25519(publicKey, String(e.payload_hash_b64u), signature))) {
    fail('SIGNATURE_INVALID', 'signature does not verify over payload_hash_b64u');
  }
  return publicKey;
}

export interface TrustedJwk {
  kty?: unknown;
  crv?: unknown;
  x?: unknown;
  kid?: unknown;
  /** Rotated-out keys: trusted only for bundles issued no later (as `KeyRing.trusts`). */
  retired_at?: unknown;
}

/** The JWKS key that vouches for `publicKey` at `issuedAt`, as `KeyRing.trusts` decides; else null. */
export function trustedKey(keys: TrustedJwk[], publicKey: Uint8Array, issuedAt: string): TrustedJwk | null {
  const x = b64u(publicKey);
  for (const k of keys) {
    if (k.kty !== 'OKP' || k.crv !== 'Ed25519' || k.x !== x) continue;
    if (k.retired_at === undefined) return k;
    const until = Date.parse(String(k.retired_at));
    if (!Number.isNaN(until) && Date.parse(issuedAt) <= until) return k;
  }
  return null;
}
