import type { Clock } from '../clock.js';
import { type Envelope, sealEnvelope, verifyEnvelope } from '../crypto/envelope.js';
import { B64U_SHA256, sha256B64u } from '../crypto/hash.js';
import { canonicalJson } from '../crypto/jcs.js';
import type { Db } from '../db/database.js';
import type { WpcRegistryRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { TrustCheck } from '../tokens/key-ring.js';
import type { SigningKey } from '../tokens/signing-key.js';
import type { HashedPolicy } from './hash-policy.js';
import type { Wpc, WpcPayload } from './types.js';
import { approvalPolicyOf } from './wpc-payload.js';

/**
 * A signed payload as stored: a Claw Bureau WPC v1 payload, or (for versions registered
 * before it) the approval policy itself, which stays verifiable for the jobs pinned to it.
 */
export type SignedWpcPayload = WpcPayload | Wpc;

export type WpcEnvelope = Envelope<SignedWpcPayload, 'work_policy_contract'>;

/**
 * Stores a policy version under its hash, signed by the bot key. Idempotent per signer: a
 * version this key already signed keeps its original envelope (the table is append-only).
 */
export async function registerPolicy(
  db: Db,
  args: { hashed: HashedPolicy; key: SigningKey; clock: Clock; source: string | null },
): Promise<{ row: WpcRegistryRow; created: boolean }> {
  const { hashed, key } = args;
  const envelope = sealEnvelope({
    type: 'work_policy_contract',
    payload: hashed.payload,
    payloadHashB64u: hashed.hash,
    key,
    issuedAt: args.clock(),
  });
  const inserted = await db
    .insertInto('wpc_registry')
    .values({
      policy_hash_b64u: hashed.hash,
      policy_name: hashed.policy.policy_name,
      canonical_payload: hashed.canonical,
      signature_b64u: envelope.signature_b64u,
      signer_did: envelope.signer_did,
      issued_at: envelope.issued_at,
      source: args.source,
    })
    .onConflict((oc) => oc.columns(['policy_hash_b64u', 'signer_did']).doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted) return { row: inserted, created: true };
  const existing = await db
    .selectFrom('wpc_registry')
    .selectAll()
    .where('policy_hash_b64u', '=', hashed.hash)
    .where('signer_did', '=', key.did)
    .executeTakeFirstOrThrow();
  return { row: existing, created: false };
}

export function assertHashFormat(hash: string): void {
  if (!B64U_SHA256.test(hash)) {
    throw new AppError(
      'ERR_WPC_HASH_MALFORMED',
      'policy hash must be 43 base64url characters (SHA-256, no padding)',
    );
  }
}

/**
 * Rebuilds and checks the envelope of a stored row: the stored text must still be the JCS
 * of its payload, hash to the row's key, and carry a valid signature from a trusted key.
 * Anything else is corruption: the bad payload is never returned.
 */
export function envelopeFromRow(row: WpcRegistryRow, trusts: TrustCheck): WpcEnvelope {
  const corrupted = (why: string) =>
    new AppError('ERR_WPC_CORRUPTED', `stored policy ${row.policy_hash_b64u} failed verification: ${why}`);
  let payload: SignedWpcPayload;
  try {
    payload = JSON.parse(row.canonical_payload) as SignedWpcPayload;
    if (canonicalJson(payload) !== row.canonical_payload) throw new Error('not canonical');
  } catch {
    throw corrupted('payload is not canonical JSON');
  }
  const envelope: WpcEnvelope = {
    envelope_version: '1',
    envelope_type: 'work_policy_contract',
    payload,
    payload_hash_b64u: row.policy_hash_b64u,
    hash_algorithm: 'SHA-256',
    signature_b64u: row.signature_b64u,
    algorithm: 'Ed25519',
    signer_did: row.signer_did,
    issued_at: new Date(row.issued_at).toISOString(),
  };
  // The stored text was just shown to be the JCS of the payload, so hashing it is hashing JCS(payload).
  const check = verifyEnvelope(envelope, {
    type: 'work_policy_contract',
    hashPayload: () => sha256B64u(row.canonical_payload),
    trustedSigners: new Set(trusts(row.signer_did, new Date(row.issued_at)) ? [row.signer_did] : []),
  });
  if (!check.ok) throw corrupted(check.message);
  let policy: Wpc;
  try {
    policy = approvalPolicyOf(payload);
  } catch (err) {
    throw corrupted((err as Error).message);
  }
  if (policy.policy_name !== row.policy_name) throw corrupted('policy_name column does not match payload');
  return envelope;
}

/**
 * Verify once, trust the bytes: a registered version never changes, so a row that verified
 * once is remembered with its exact stored bytes (hash, signer, signature, issue time, name,
 * canonical text). A later read of the same bytes is the same verified policy; a row whose
 * bytes differ in any way (a tampered payload, a swapped signature) is verified from scratch,
 * and fails as it would have. Whether the signer is trusted is asked on every read (a key may
 * stop being trusted); only the hashing and signature work is skipped. Bounded: the least
 * recently used entry goes first.
 */
export const VERIFIED_POLICY_CACHE_MAX = 64;

interface VerifiedRow {
  bytes: string;
  envelope: WpcEnvelope;
  policy: Wpc;
}

const verifiedRows = new Map<string, VerifiedRow>();

const rowKey = (row: WpcRegistryRow) => `${row.policy_hash_b64u}\n${row.signer_did}`;

function rowBytes(row: WpcRegistryRow): string {
  return JSON.stringify([
    row.policy_hash_b64u,
    row.signer_did,
    row.signature_b64u,
    new Date(row.issued_at).toISOString(),
    row.policy_name,
    row.canonical_payload,
  ]);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** `envelopeFromRow`, remembered by the row's exact bytes. The result is frozen: it is shared. */
function verifiedRow(row: WpcRegistryRow, trusts: TrustCheck): VerifiedRow {
  const key = rowKey(row);
  const bytes = rowBytes(row);
  const known = verifiedRows.get(key);
  if (known && known.bytes === bytes && trusts(row.signer_did, new Date(row.issued_at))) {
    verifiedRows.delete(key);
    verifiedRows.set(key, known);
    return known;
  }
  if (known) verifiedRows.delete(key);
  const envelope = deepFreeze(envelopeFromRow(row, trusts));
  const entry = { bytes, envelope, policy: deepFreeze(approvalPolicyOf(envelope.payload)) };
  verifiedRows.set(key, entry);
  while (verifiedRows.size > VERIFIED_POLICY_CACHE_MAX)
    verifiedRows.delete(verifiedRows.keys().next().value!);
  return entry;
}

/** How many verified rows are remembered (tests of the bound). */
export function verifiedPolicyCacheSize(): number {
  return verifiedRows.size;
}

function verifiedOfRows(hash: string, rows: readonly WpcRegistryRow[], trusts: TrustCheck): VerifiedRow {
  if (rows.length === 0) throw new AppError('ERR_WPC_NOT_FOUND', `no policy with hash ${hash} is registered`);
  const reasons: string[] = [];
  for (const row of [...rows].sort((a, b) => +new Date(b.registered_at) - +new Date(a.registered_at))) {
    try {
      return verifiedRow(row, trusts);
    } catch (err) {
      reasons.push((err as Error).message);
    }
  }
  throw new AppError('ERR_WPC_CORRUPTED', reasons[0] ?? `stored policy ${hash} failed verification`);
}

/** The first row of a version that verifies (rows from trusted signers, newest first). */
export function verifiedEnvelope(
  hash: string,
  rows: readonly WpcRegistryRow[],
  trusts: TrustCheck,
): WpcEnvelope {
  return verifiedOfRows(hash, rows, trusts).envelope;
}

/** The approval policy of the first row of a version that verifies (as `verifiedEnvelope`). */
export function verifiedApprovalPolicy(
  hash: string,
  rows: readonly WpcRegistryRow[],
  trusts: TrustCheck,
): Wpc {
  return verifiedOfRows(hash, rows, trusts).policy;
}

/** Reads one version and verifies it before returning it. */
export async function getVerifiedPolicy(db: Db, hash: string, trusts: TrustCheck): Promise<WpcEnvelope> {
  assertHashFormat(hash);
  const rows = await db.selectFrom('wpc_registry').selectAll().where('policy_hash_b64u', '=', hash).execute();
  return verifiedEnvelope(hash, rows, trusts);
}

/** The approval policy of one version, read and verified as `getVerifiedPolicy` does (either payload form). */
export async function getVerifiedApprovalPolicy(db: Db, hash: string, trusts: TrustCheck): Promise<Wpc> {
  assertHashFormat(hash);
  const rows = await db.selectFrom('wpc_registry').selectAll().where('policy_hash_b64u', '=', hash).execute();
  return verifiedApprovalPolicy(hash, rows, trusts);
}

/** Every registered version (one entry per hash, first registration), oldest first. */
export async function listRegisteredPolicies(db: Db, name?: string): Promise<WpcRegistryRow[]> {
  let q = db.selectFrom('wpc_registry').selectAll().orderBy('policy_name').orderBy('registered_at');
  if (name) q = q.where('policy_name', '=', name);
  const seen = new Set<string>();
  return (await q.execute()).filter((r) => !seen.has(r.policy_hash_b64u) && !!seen.add(r.policy_hash_b64u));
}
