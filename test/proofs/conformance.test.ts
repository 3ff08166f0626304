import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type BundleFailure, type BundleTrust, verifyBundle } from '../../src/proofs/verify-bundle.js';
import { clawBureauJson, upstreamPath } from '../helpers/clawbureau.js';

/**
 * Claw Bureau's protocol-conformance manifest, every `proof_bundle` vector: our verdict next to
 * theirs. "same" rows give their verdict and, when it is a failure, a `cbReason` among the
 * manifest's expected codes; "unsupported" rows fail with UNSUPPORTED_FEATURE naming the
 * feature we chose not to evaluate (never OK, even where clawverify says valid).
 */
const VECTORS_DIR = 'packages/schema/fixtures/protocol-conformance';
const FOLDER = `upstream/${VECTORS_DIR}`;

interface Vector {
  name: string;
  kind: string;
  path: string;
  expected: { valid: boolean; reason_code: string | string[] };
}

type Row = { ours: 'same'; reason: BundleFailure | 'OK' } | { ours: 'unsupported'; feature: string };

const TABLE: Record<string, Row> = {
  'proof_bundle.pass': { ours: 'same', reason: 'OK' },
  'proof_bundle.pass.mixed_receipts': { ours: 'same', reason: 'BUNDLE_HASH_MISMATCH' },
  'proof_bundle.fail.invalid_signature': { ours: 'same', reason: 'BUNDLE_SIGNATURE_INVALID' },
  'proof_bundle.fail.receipt_binding_mismatch': { ours: 'same', reason: 'RECEIPT_BINDING_MISMATCH' },
  'proof_bundle.fail.unknown_envelope_version': { ours: 'same', reason: 'BUNDLE_ENVELOPE_MALFORMED' },
  'proof_bundle.fail.tool_receipt_bad_version': { ours: 'same', reason: 'TOOL_RECEIPT_INVALID' },
  'proof_bundle.fail.tool_receipt_missing_field': { ours: 'same', reason: 'TOOL_RECEIPT_INVALID' },
  'proof_bundle.fail.tool_receipt_agent_mismatch': { ours: 'same', reason: 'BUNDLE_HASH_MISMATCH' },
  'proof_bundle.fail.wrong_signer_did': { ours: 'same', reason: 'BUNDLE_HASH_MISMATCH' },
  'proof_bundle.fail.missing_envelope_field': { ours: 'same', reason: 'BUNDLE_ENVELOPE_MALFORMED' },
  'proof_bundle.fail.unknown_hash_algorithm': { ours: 'same', reason: 'BUNDLE_UNSUPPORTED_ALGORITHM' },
  'proof_bundle.fail.empty_event_chain': { ours: 'same', reason: 'BUNDLE_PAYLOAD_INVALID' },
  'proof_bundle.fail.side_effect_bad_class': { ours: 'same', reason: 'SIDE_EFFECT_RECEIPT_INVALID' },
  'proof_bundle.fail.side_effect_missing_field': { ours: 'same', reason: 'SIDE_EFFECT_RECEIPT_INVALID' },
  'proof_bundle.fail.human_approval_bad_type': { ours: 'same', reason: 'APPROVAL_RECEIPT_INVALID' },
  'proof_bundle.fail.human_approval_agent_mismatch': { ours: 'same', reason: 'BUNDLE_HASH_MISMATCH' },
  'proof_bundle.r48.tool_receipt_v2_cosig_valid': { ours: 'same', reason: 'OK' },
  'proof_bundle.r48.tool_receipt_v2_cosig_secondary_invalid': {
    ours: 'same',
    reason: 'CO_SIGNATURE_INVALID',
  },
  'proof_bundle.r48.tool_receipt_v2_sd_type_confusion': {
    ours: 'unsupported',
    feature: 'selective disclosure',
  },
  'proof_bundle.r48.tool_receipt_v2_sd_merkle_mismatch': {
    ours: 'unsupported',
    feature: 'selective disclosure',
  },
  'proof_bundle.r48.tool_receipt_v2_binding_mismatch': {
    ours: 'same',
    reason: 'TOOL_RECEIPT_BINDING_MISMATCH',
  },
  'proof_bundle.cpl_v2_rate_limit.pass': { ours: 'unsupported', feature: 'rate-limit claims' },
  'proof_bundle.cpl_v2_rate_limit.fail.window_invalid': { ours: 'unsupported', feature: 'rate-limit claims' },
  'proof_bundle.cpl_v2_rate_limit.fail.exceeded': { ours: 'unsupported', feature: 'rate-limit claims' },
};

const manifest = clawBureauJson<{ vectors: Vector[] }>(`${FOLDER}/manifest.v1.json`);
const vectors = manifest.vectors.filter((v) => v.kind === 'proof_bundle');
const config = clawBureauJson<{ allowlists: { gateway_receipt_signer_dids: string[] } }>(
  `${FOLDER}/clawverify.config.conformance.v1.json`,
);
const allowlists = clawBureauJson<{ agent_did: string }>(`${FOLDER}/allowlists.v1.json`);

/**
 * Trust as the conformance configuration says: its gateway allowlist for receipts. It names no
 * bundle signers (clawverify accepts any), so we trust the agent `allowlists.v1.json` names and
 * the one key that signs every r48 vector, named here rather than read from the vector under test.
 */
const R48_AGENT = 'did:key:z6MkjThSggFgCaZ2gvuBbGeEaNofuer1GkxtWpYxy1kWJd7m';
const trust: BundleTrust = {
  trustsSigner: (did) => did === allowlists.agent_did || did === R48_AGENT,
  gatewaySigners: new Set(config.allowlists.gateway_receipt_signer_dids),
};

const load = (v: Vector) =>
  JSON.parse(readFileSync(upstreamPath(v.path), 'utf8')) as { issued_at: string; signer_did: string };
/** The vectors carry no expiry; the clock is fixed anyway, at each vector's own issue time. */
const verify = (v: Vector) => {
  const env = load(v);
  return verifyBundle(env, trust, { now: new Date(env.issued_at) });
};
const codes = (v: Vector) => [v.expected.reason_code].flat();

describe('Claw Bureau protocol-conformance proof_bundle vectors', () => {
  it('the table has one row per proof_bundle vector of the manifest, 16 of them v1', () => {
    expect(vectors.map((v) => v.name).sort()).toEqual(Object.keys(TABLE).sort());
    // v1 vectors lie in the folder itself; the r48 and profile vectors in subfolders.
    const v1 = vectors.filter(
      (v) => v.path.startsWith(`${VECTORS_DIR}/`) && !v.path.slice(VECTORS_DIR.length + 1).includes('/'),
    );
    expect(v1).toHaveLength(16);
    for (const v of v1) expect(TABLE[v.name], v.name).toMatchObject({ ours: 'same' });
  });

  it.each(vectors.map((v) => [v.name, v] as const))('%s', (_name, v) => {
    const row = TABLE[v.name]!;
    const verdict = verify(v);
    if (row.ours === 'unsupported') {
      expect(verdict).toMatchObject({
        ok: false,
        reason: 'UNSUPPORTED_FEATURE',
        cbReason: null,
        message: expect.stringContaining(row.feature),
      });
      return;
    }
    if (v.expected.valid) {
      expect(verdict).toMatchObject({ ok: true });
      expect(row.reason).toBe('OK');
      return;
    }
    expect(verdict).toMatchObject({ ok: false, reason: row.reason });
    if (verdict.ok) return;
    expect(codes(v)).toContain(verdict.cbReason);
    // The failing check is the last one recorded, with the same reason and code.
    expect(verdict.checks.at(-1)).toMatchObject({
      ok: false,
      reason: row.reason,
      cbReason: verdict.cbReason,
    });
  });

  it('a vector clawverify accepts from an untrusted signer fails with BUNDLE_SIGNER_UNTRUSTED', () => {
    const pass = vectors.find((v) => v.name === 'proof_bundle.r48.tool_receipt_v2_cosig_valid')!;
    const env = load(pass);
    expect(env.signer_did).toBe(R48_AGENT);
    expect(
      verifyBundle(
        env,
        { ...trust, trustsSigner: (did) => did === allowlists.agent_did },
        { now: new Date(env.issued_at) },
      ),
    ).toMatchObject({ ok: false, reason: 'BUNDLE_SIGNER_UNTRUSTED', cbReason: null });
  });
});
