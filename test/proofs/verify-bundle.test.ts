import { describe, expect, it } from 'vitest';
import { sealEnvelope, verifyEnvelope } from '../../src/crypto/envelope.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import { type BundleFailure, type BundleTrust, verifyBundle } from '../../src/proofs/verify-bundle.js';
import { clawBureauJson } from '../helpers/clawbureau.js';
import { gatewayReceipt } from '../helpers/receipts.js';
import { newKey } from '../helpers/state.js';

// Claw Bureau's own conformance vectors: one bundle its verifier accepts, two it rejects.
const fixture = (name: string): unknown => clawBureauJson(`fixtures/${name}`);

interface Allowlists {
  gateway_receipt_signer_dids: string[];
  agent_did: string;
}
interface FixtureBundle {
  signer_did: string;
  issued_at: string;
  payload: {
    bundle_id: string;
    event_chain: { run_id: string; event_hash_b64u: string }[];
    receipts: { signer_did: string; payload: { binding: { run_id: string; event_hash_b64u: string } } }[];
  };
}

const allowlists = fixture('allowlists.v1.json') as Allowlists;
const pass = () => fixture('proof_bundle_pass.v1.json') as FixtureBundle;
const badSignature = () => fixture('proof_bundle_fail_invalid_signature.v1.json') as FixtureBundle;
const bindingMismatch = () => fixture('proof_bundle_fail_receipt_binding_mismatch.v1.json') as FixtureBundle;

/** Trust exactly as the vectors' allowlists say. */
const allowlisted: BundleTrust = {
  trustsSigner: (did) => did === allowlists.agent_did,
  gatewaySigners: new Set(allowlists.gateway_receipt_signer_dids),
};

describe('verifyBundle on the Claw Bureau conformance vectors', () => {
  it('accepts proof_bundle_pass with the allowlisted agent and gateway signers', () => {
    const env = pass();
    expect(verifyBundle(env, allowlisted)).toEqual({
      ok: true,
      bundleId: 'bundle_conformance_001',
      signerDid: allowlists.agent_did,
      events: 1,
      receipts: 1,
      approvals: 0,
      checks: expect.any(Array),
    });
  });

  it('asks the trust callback about the envelope signer at its issued_at', () => {
    const env = pass();
    const asked: [string, string][] = [];
    const verdict = verifyBundle(env, {
      trustsSigner: (did, at) => {
        asked.push([did, at.toISOString()]);
        return did === allowlists.agent_did;
      },
      gatewaySigners: allowlisted.gatewaySigners,
    });
    expect(verdict.ok).toBe(true);
    expect(asked).toEqual([[env.signer_did, env.issued_at]]);
  });

  it('rejects proof_bundle_fail_invalid_signature with BUNDLE_SIGNATURE_INVALID', () => {
    expect(verifyBundle(badSignature(), allowlisted)).toMatchObject({
      ok: false,
      reason: 'BUNDLE_SIGNATURE_INVALID',
    });
  });

  it('rejects proof_bundle_fail_receipt_binding_mismatch with RECEIPT_BINDING_MISMATCH', () => {
    const env = bindingMismatch();
    // Why this reason and not RECEIPT_SIGNER_UNTRUSTED or RECEIPT_SIGNATURE_INVALID: the vector's
    // receipt was re-signed by the allowlisted gateway, so the receipt envelope on its own is
    // sound; only its binding names another run than the bundle's event chain.
    const receipt = env.payload.receipts[0]!;
    expect(allowlists.gateway_receipt_signer_dids).toContain(receipt.signer_did);
    expect(
      verifyEnvelope(receipt, {
        type: 'gateway_receipt',
        hashPayload: bundlePayloadHash,
        trustedSigners: allowlisted.gatewaySigners,
      }),
    ).toEqual({ ok: true });
    expect(receipt.payload.binding.run_id).toBe('run_conformance_other');
    expect(env.payload.event_chain[0]!.run_id).toBe('run_conformance_001');
    // The bundle envelope itself verifies too: the failure is the receipt binding alone.
    expect(verifyEnvelope(env, { type: 'proof_bundle', hashPayload: bundlePayloadHash })).toEqual({
      ok: true,
    });

    expect(verifyBundle(env, allowlisted)).toMatchObject({
      ok: false,
      reason: 'RECEIPT_BINDING_MISMATCH',
      message: expect.stringContaining('run_conformance_other'),
    });
  });

  it('rejects a bundle whose signer is not trusted with BUNDLE_SIGNER_UNTRUSTED', () => {
    const verdict = verifyBundle(pass(), {
      trustsSigner: () => false,
      gatewaySigners: allowlisted.gatewaySigners,
    });
    expect(verdict).toMatchObject({ ok: false, reason: 'BUNDLE_SIGNER_UNTRUSTED' });
    const otherAgent = verifyBundle(pass(), {
      trustsSigner: (did) => did === allowlists.gateway_receipt_signer_dids[0],
      gatewaySigners: allowlisted.gatewaySigners,
    });
    expect(otherAgent).toMatchObject({ ok: false, reason: 'BUNDLE_SIGNER_UNTRUSTED' });
  });

  it('rejects a gateway receipt whose signer is not allowlisted with RECEIPT_SIGNER_UNTRUSTED', () => {
    expect(verifyBundle(pass(), { ...allowlisted, gatewaySigners: new Set() })).toMatchObject({
      ok: false,
      reason: 'RECEIPT_SIGNER_UNTRUSTED',
    });
    expect(
      verifyBundle(pass(), { ...allowlisted, gatewaySigners: new Set([allowlists.agent_did]) }),
    ).toMatchObject({ ok: false, reason: 'RECEIPT_SIGNER_UNTRUSTED' });
  });

  it('checks the bundle signature before trusting anything inside it', () => {
    // The invalid-signature vector fails on its signature even when nothing else is trusted.
    expect(
      verifyBundle(badSignature(), { trustsSigner: () => false, gatewaySigners: new Set() }),
    ).toMatchObject({ ok: false, reason: 'BUNDLE_SIGNATURE_INVALID' });
  });

  const malformed: [string, () => unknown, BundleFailure][] = [
    ['not an object', () => 'proof bundle', 'BUNDLE_ENVELOPE_MALFORMED'],
    ['null', () => null, 'BUNDLE_ENVELOPE_MALFORMED'],
    [
      'a WPC envelope type',
      () => ({ ...pass(), envelope_type: 'work_policy_contract' }),
      'BUNDLE_ENVELOPE_TYPE_MISMATCH',
    ],
    ['another algorithm', () => ({ ...pass(), algorithm: 'ES256' }), 'BUNDLE_UNSUPPORTED_ALGORITHM'],
    [
      'an edited payload',
      () => {
        const env = pass();
        env.payload.bundle_id = 'bundle_conformance_002';
        return env;
      },
      'BUNDLE_HASH_MISMATCH',
    ],
    [
      'a signer that is no did:key',
      () => ({ ...pass(), signer_did: 'did:web:example.com' }),
      // Claw Bureau's order: the DID's format passes, then it is not the payload's agent.
      'AGENT_DID_MISMATCH',
    ],
    [
      'a did:web signer named as the agent too',
      () => {
        const env = pass();
        (env.payload as unknown as { agent_did: string }).agent_did = 'did:web:example.com';
        return {
          ...env,
          signer_did: 'did:web:example.com',
          payload_hash_b64u: bundlePayloadHash(env.payload),
        };
      },
      // Hash recomputed, so the first fault is a key that cannot be read from a did:web.
      'BUNDLE_SIGNER_DID_INVALID',
    ],
  ];
  it.each(malformed)('rejects %s with %s', (_why, make, reason) => {
    expect(verifyBundle(make(), allowlisted)).toMatchObject({ ok: false, reason });
  });
});

/** The passing vector's payload, changed by `mutate`, signed by `key` as its agent. */
function signedBy(key: ReturnType<typeof newKey>, mutate: (p: Record<string, unknown>) => void = () => {}) {
  const payload = structuredClone(pass().payload) as unknown as Record<string, unknown>;
  payload.agent_did = key.did;
  mutate(payload);
  return sealEnvelope({
    type: 'proof_bundle',
    payload,
    payloadHashB64u: bundlePayloadHash(payload),
    key,
    issuedAt: new Date(pass().issued_at),
  });
}

describe('what verifyBundle reports', () => {
  it('lists every check made, each passed, in order', () => {
    const verdict = verifyBundle(pass(), allowlisted);
    expect(verdict.checks.map((c) => c.id)).toEqual([
      'envelope.format',
      'bundle.schema',
      'bundle.limits',
      'bundle.agent',
      'envelope.hash',
      'envelope.signature',
      'envelope.signer_trusted',
      'bundle.features',
      'event_chain',
      'receipts.gateway',
      'receipts.tool',
      'receipts.side_effect',
      'receipts.approval',
      'causal.graph',
      'causal.side_effects',
      'ours.metadata',
      'causal.approvals',
    ]);
    for (const c of verdict.checks) {
      expect(c.ok, c.id).toBe(true);
      expect(c.message.length, c.id).toBeGreaterThan(0);
      expect(c, c.id).not.toHaveProperty('cbReason');
    }
  });

  it("stops at the first failing check, which carries the verdict and Claw Bureau's code", () => {
    const verdict = verifyBundle(badSignature(), allowlisted);
    expect(verdict).toMatchObject({
      ok: false,
      reason: 'BUNDLE_SIGNATURE_INVALID',
      cbReason: 'SIGNATURE_INVALID',
    });
    expect(verdict.checks.at(-1)).toEqual({
      id: 'envelope.signature',
      ok: false,
      reason: 'BUNDLE_SIGNATURE_INVALID',
      cbReason: 'SIGNATURE_INVALID',
      message: expect.any(String),
    });
    expect(verdict.checks.slice(0, -1).every((c) => c.ok)).toBe(true);
  });

  it("gives a null cbReason for a check Claw Bureau does not make (the signer's trust)", () => {
    const verdict = verifyBundle(pass(), { ...allowlisted, trustsSigner: () => false });
    expect(verdict).toMatchObject({ ok: false, reason: 'BUNDLE_SIGNER_UNTRUSTED', cbReason: null });
  });

  it('keeps untrusted text in messages quoted and short', () => {
    const agent = newKey();
    const gateway = newKey();
    const runId = `evil\u001b[31m${'x'.repeat(500)}`;
    const env = signedBy(agent, (p) => {
      const chain = p.event_chain as { event_hash_b64u: string }[];
      p.receipts = [
        gatewayReceipt(gateway, { run_id: runId, event_hash_b64u: chain[0]!.event_hash_b64u }, 'r1'),
      ];
    });
    const verdict = verifyBundle(env, {
      trustsSigner: (did) => did === agent.did,
      gatewaySigners: new Set([gateway.did]),
    });
    expect(verdict).toMatchObject({
      ok: false,
      reason: 'RECEIPT_BINDING_MISMATCH',
      message: expect.stringContaining('evil'),
    });
    for (const c of verdict.checks) {
      expect(c.message).not.toContain('\u001b');
      expect(c.message.length).toBeLessThan(400);
    }
  });
});

describe('a self-consistent forgery', () => {
  it('is rejected with BUNDLE_SIGNER_UNTRUSTED although every hash, signature and binding holds', () => {
    const forger = newKey();
    const forged = signedBy(forger, (p) => {
      const chain = p.event_chain as { run_id: string; event_hash_b64u: string }[];
      p.human_approval_receipts = [
        {
          receipt_version: '1',
          receipt_id: 'har_forged',
          approval_type: 'explicit_approve',
          approver_subject: 'security-lead',
          agent_did: forger.did,
          scope_hash_b64u: 'c2NvcGUtaGFzaA',
          hash_algorithm: 'SHA-256',
          timestamp: '2026-02-12T00:00:00.000Z',
          binding: { run_id: chain[0]!.run_id, event_hash_b64u: chain[0]!.event_hash_b64u },
        },
      ];
    });
    // Self-consistent: trusting the forger's key, nothing else fails.
    expect(verifyBundle(forged, { ...allowlisted, trustsSigner: (did) => did === forger.did })).toMatchObject(
      {
        ok: true,
        approvals: 1,
      },
    );
    expect(verifyBundle(forged, allowlisted)).toMatchObject({
      ok: false,
      reason: 'BUNDLE_SIGNER_UNTRUSTED',
      cbReason: null,
    });
  });
});

describe('the injected clock', () => {
  const agent = newKey();
  const trust: BundleTrust = { ...allowlisted, trustsSigner: (did) => did === agent.did };
  const withExpiry = (expiresAt: string) => {
    const env = signedBy(agent);
    return { ...env, expires_at: expiresAt };
  };

  it('judges expires_at at opts.now, not at the wall clock', () => {
    const env = withExpiry('2026-03-01T00:00:00.000Z');
    expect(verifyBundle(env, trust, { now: new Date('2026-02-28T23:59:59.000Z') })).toMatchObject({
      ok: true,
    });
    expect(verifyBundle(env, trust, { now: new Date('2026-03-01T00:00:00.001Z') })).toMatchObject({
      ok: false,
      reason: 'BUNDLE_EXPIRED',
      cbReason: 'EXPIRED_TTL',
    });
  });

  it('rejects an expires_at that is no date', () => {
    expect(verifyBundle(withExpiry('soon'), trust, { now: new Date('2026-02-12T00:00:00Z') })).toMatchObject({
      ok: false,
      reason: 'BUNDLE_ENVELOPE_MALFORMED',
      cbReason: 'MALFORMED_ENVELOPE',
    });
  });
});

describe('what this verifier does not evaluate fails as UNSUPPORTED_FEATURE, never OK', () => {
  const agent = newKey();
  const trust: BundleTrust = { ...allowlisted, trustsSigner: (did) => did === agent.did };
  const features: [string, string, (p: Record<string, unknown>) => void][] = [
    [
      'urm',
      'URM reference',
      (p) =>
        void (p.urm = {
          urm_version: '1',
          urm_id: 'u',
          resource_type: 't',
          resource_hash_b64u: 'AAAAAAAAAAAA',
        }),
    ],
    ['vir_receipts', 'verifiable inference receipts', (p) => void (p.vir_receipts = [{}])],
    ['web_receipts', 'witnessed web receipts', (p) => void (p.web_receipts = [{}])],
    ['coverage_attestations', 'coverage attestations', (p) => void (p.coverage_attestations = [])],
    [
      'binary_semantic_evidence_attestations',
      'binary semantic evidence',
      (p) => void (p.binary_semantic_evidence_attestations = []),
    ],
    ['delegation_receipts', 'delegation receipts', (p) => void (p.delegation_receipts = [])],
    ['rate_limit_claims', 'rate-limit claims', (p) => void (p.rate_limit_claims = [])],
    ['attestations', 'attestations', (p) => void (p.attestations = [{}])],
    ...[
      'policy_binding',
      'data_handling',
      'runner_measurement',
      'runner_attestation_receipt',
      'reviewer_signoff_receipts',
      'prompt_pack',
      'system_prompt_report',
      'sentinels',
    ].map((key): [string, string, (p: Record<string, unknown>) => void] => [
      `metadata.${key}`,
      `metadata.${key}`,
      (p) => void (p.metadata = { [key]: {} }),
    ]),
  ];
  it.each(features)('%s', (_key, named, add) => {
    const verdict = verifyBundle(signedBy(agent, add), trust);
    expect(verdict).toMatchObject({ ok: false, reason: 'UNSUPPORTED_FEATURE', cbReason: null });
    if (!verdict.ok) expect(verdict.message).toContain(named);
  });

  it('BLAKE3 envelope hashes', () => {
    expect(verifyBundle({ ...signedBy(agent), hash_algorithm: 'BLAKE3' }, trust)).toMatchObject({
      ok: false,
      reason: 'UNSUPPORTED_FEATURE',
      message: expect.stringContaining('BLAKE3'),
    });
  });
});

describe("Claw Bureau's size limits", () => {
  const agent = newKey();
  const trust: BundleTrust = { ...allowlisted, trustsSigner: (did) => did === agent.did };

  it('fails a chain of more than 1000 events with BUNDLE_TOO_LARGE', () => {
    const env = signedBy(agent, (p) => {
      const chain = p.event_chain as Record<string, unknown>[];
      p.event_chain = Array.from({ length: 1001 }, (_, i) => ({ ...chain[0], event_id: `evt_${i}` }));
    });
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: false,
      reason: 'BUNDLE_TOO_LARGE',
      cbReason: 'MALFORMED_ENVELOPE',
    });
  });

  it('fails a repeated event_id like Claw Bureau', () => {
    const env = signedBy(agent, (p) => {
      const chain = p.event_chain as Record<string, unknown>[];
      p.event_chain = [chain[0], { ...chain[0], prev_hash_b64u: chain[0]!.event_hash_b64u }];
    });
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: false,
      reason: 'EVENT_CHAIN_INVALID',
      cbReason: 'MALFORMED_ENVELOPE',
    });
  });

  it("reports metadata over clawverify's 16 KB on its check, without failing the evidence", () => {
    const env = signedBy(agent, (p) => void (p.metadata = { note: 'x'.repeat(17 * 1024) }));
    const verdict = verifyBundle(env, trust);
    expect(verdict.ok).toBe(true);
    expect(verdict.checks.find((c) => c.id === 'bundle.limits')).toMatchObject({
      ok: true,
      cbReason: 'MALFORMED_ENVELOPE',
      message: expect.stringContaining('16 KB'),
    });
  });
});
