import { describe, expect, it } from 'vitest';
import { b64u } from '../../src/crypto/hash.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { type SigningKey, signBytes } from '../../src/tokens/signing-key.js';
import { newKey } from '../helpers/state.js';
import { agent, event, foreignBundle, trust } from './verify-foreign-bundle.js';

const HASH = 'mo72_ab1UHvxY2DERZG2Tn12KNl2e_NSUrVDEQ5-Jds';
const tool = newKey();
const approver = newKey();
const auditor = newKey();

function toolPayload(overrides: Record<string, unknown> = {}) {
  return {
    receipt_version: '2',
    receipt_id: 'tr_1',
    tool_name: 'search.docs',
    args_hash_b64u: HASH,
    result_hash_b64u: HASH,
    hash_algorithm: 'SHA-256',
    agent_did: agent.did,
    timestamp: '2026-02-12T00:00:00.000Z',
    latency_ms: 12,
    args_salt_b64u: HASH,
    result_salt_b64u: HASH,
    binding: { run_id: event.run_id, event_hash_b64u: event.event_hash_b64u },
    ...overrides,
  };
}

const sign = (key: SigningKey, text: string) => b64u(signBytes(key, text));

/** A v2 tool receipt envelope signed by `tool`, co-signed by each of `co`. */
function toolEnvelope(
  payload: Record<string, unknown> = toolPayload(),
  co: { key: SigningKey; role: string; over?: string }[] = [],
  extra: Record<string, unknown> = {},
) {
  const hash = bundlePayloadHash(payload);
  return {
    envelope_version: '2',
    envelope_type: 'tool_receipt',
    payload,
    payload_hash_b64u: hash,
    hash_algorithm: 'SHA-256',
    signature_b64u: sign(tool, hash),
    algorithm: 'Ed25519',
    signer_did: tool.did,
    issued_at: '2026-02-12T00:00:01.000Z',
    co_signatures: co.map((c) => ({
      signature_b64u: sign(c.key, c.over ?? hash),
      algorithm: 'Ed25519',
      signer_did: c.key.did,
      issued_at: '2026-02-12T00:00:02.000Z',
      role: c.role,
    })),
    ...extra,
  };
}

const withTools = (...receipts: unknown[]) =>
  foreignBundle((p) => {
    p.tool_receipts = receipts;
  });

describe('co-signatures (co_signature.v1) on tool receipt envelopes', () => {
  it('verifies every co-signature over the payload hash', () => {
    const env = withTools(
      toolEnvelope(toolPayload(), [
        { key: approver, role: 'approver' },
        { key: auditor, role: 'auditor' },
      ]),
    );
    const verdict = verifyBundle(env, trust);
    expect(verdict).toMatchObject({ ok: true });
    expect(verdict.checks.find((c) => c.id === 'receipts.tool')?.message).toContain('2 co-signatures');
  });

  const forged: [string, () => unknown][] = [
    [
      'signed over another hash',
      () => toolEnvelope(toolPayload(), [{ key: auditor, role: 'auditor', over: HASH }]),
    ],
    [
      "carried over from another receipt's envelope",
      () => {
        const other = toolEnvelope(toolPayload({ receipt_id: 'tr_other' }), [
          { key: auditor, role: 'auditor' },
        ]);
        return { ...toolEnvelope(), co_signatures: other.co_signatures };
      },
    ],
    [
      'naming a signer other than the key that signed',
      () => {
        const env = toolEnvelope(toolPayload(), [{ key: auditor, role: 'auditor' }]);
        env.co_signatures[0]!.signer_did = approver.did;
        return env;
      },
    ],
    [
      'by a did:web, whose key cannot be read offline',
      () => {
        const env = toolEnvelope(toolPayload(), [{ key: auditor, role: 'auditor' }]);
        env.co_signatures[0]!.signer_did = 'did:web:auditor.example.org';
        return env;
      },
    ],
    [
      'second of two, the first sound',
      () => {
        const env = toolEnvelope(toolPayload(), [
          { key: approver, role: 'approver' },
          { key: auditor, role: 'auditor', over: HASH },
        ]);
        return env;
      },
    ],
  ];
  it.each(forged)('rejects a co-signature %s with CO_SIGNATURE_INVALID', (_what, make) => {
    expect(verifyBundle(withTools(make()), trust)).toMatchObject({
      ok: false,
      reason: 'CO_SIGNATURE_INVALID',
      cbReason: 'CO_SIGNATURE_INVALID',
    });
  });

  const malformed: [string, () => unknown][] = [
    ['an unknown role', () => toolEnvelope(toolPayload(), [{ key: auditor, role: 'notary' }])],
    [
      'more than 16 co-signatures',
      () =>
        toolEnvelope(
          toolPayload(),
          Array.from({ length: 17 }, () => ({ key: auditor, role: 'auditor' })),
        ),
    ],
    [
      'co-signatures on a v1 envelope, which has none',
      () => ({ ...toolEnvelope(toolPayload(), [{ key: auditor, role: 'auditor' }]), envelope_version: '1' }),
    ],
    [
      'a co-signature without its issued_at',
      () => {
        const env = toolEnvelope(toolPayload(), [{ key: auditor, role: 'auditor' }]);
        delete (env.co_signatures[0] as Partial<(typeof env.co_signatures)[0]>).issued_at;
        return env;
      },
    ],
  ];
  it.each(malformed)('rejects %s as a schema violation', (_what, make) => {
    expect(verifyBundle(withTools(make()), trust)).toMatchObject({
      ok: false,
      reason: 'TOOL_RECEIPT_INVALID',
      cbReason: 'SCHEMA_VALIDATION_FAILED',
    });
  });
});

describe('tool receipts', () => {
  it('accepts an unsigned v1 tool receipt of the agent bound to the chain', () => {
    const v1 = {
      receipt_version: '1',
      receipt_id: 'tr_v1',
      tool_name: 'bash',
      args_hash_b64u: 'a',
      result_hash_b64u: 'r',
      hash_algorithm: 'SHA-256',
      agent_did: agent.did,
      timestamp: '2026-02-12T00:00:00.000Z',
      latency_ms: 1,
      binding: { run_id: event.run_id, event_hash_b64u: event.event_hash_b64u },
    };
    expect(verifyBundle(withTools(v1), trust)).toMatchObject({ ok: true });
  });

  it('rejects a primary signature that does not verify', () => {
    const env = { ...toolEnvelope(), signature_b64u: sign(auditor, bundlePayloadHash(toolPayload())) };
    expect(verifyBundle(withTools(env), trust)).toMatchObject({
      ok: false,
      reason: 'TOOL_RECEIPT_SIGNATURE_INVALID',
      cbReason: 'SIGNATURE_INVALID',
    });
  });

  it('rejects a payload changed after signing', () => {
    const env = toolEnvelope();
    env.payload.latency_ms = 13;
    expect(verifyBundle(withTools(env), trust)).toMatchObject({
      ok: false,
      reason: 'TOOL_RECEIPT_HASH_MISMATCH',
      cbReason: 'HASH_MISMATCH',
    });
  });

  it('judges an envelope expiry at the injected clock', () => {
    const env = withTools(toolEnvelope(toolPayload(), [], { expires_at: '2026-03-01T00:00:00.000Z' }));
    expect(verifyBundle(env, trust, { now: new Date('2026-02-28T00:00:00Z') })).toMatchObject({ ok: true });
    expect(verifyBundle(env, trust, { now: new Date('2026-03-02T00:00:00Z') })).toMatchObject({
      ok: false,
      reason: 'TOOL_RECEIPT_EXPIRED',
      cbReason: 'EXPIRED_TTL',
    });
  });

  it("rejects a receipt naming another agent than the bundle's", () => {
    const env = withTools(toolEnvelope(toolPayload({ agent_did: newKey().did })));
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: false,
      reason: 'TOOL_RECEIPT_INVALID',
      cbReason: 'PROOF_BUNDLE_AGENT_MISMATCH',
    });
  });

  it('rejects a receipt bound to another run, and (beyond Claw Bureau) one bound to nothing', () => {
    const other = withTools(
      toolEnvelope(toolPayload({ binding: { run_id: 'run_other', event_hash_b64u: event.event_hash_b64u } })),
    );
    expect(verifyBundle(other, trust)).toMatchObject({
      ok: false,
      reason: 'TOOL_RECEIPT_BINDING_MISMATCH',
      cbReason: 'RECEIPT_BINDING_MISMATCH',
    });
    const { binding: _none, ...unbound } = toolPayload();
    expect(verifyBundle(withTools(toolEnvelope(unbound)), trust)).toMatchObject({
      ok: false,
      reason: 'TOOL_RECEIPT_BINDING_MISMATCH',
      cbReason: null,
    });
  });

  it('fails selective disclosures and BLAKE3 envelopes as unsupported, never OK', () => {
    const disclosed = toolPayload({
      args_disclosure: {
        disclosure_algorithm: 'vir_v2_typed_lexicographical',
        merkle_root_b64u: HASH,
        redacted_leaf_hashes_b64u: [],
        disclosed_leaves: { 'args.query': { type: 'string', value: 'claws', salt_b64u: HASH } },
      },
    });
    expect(verifyBundle(withTools(toolEnvelope(disclosed)), trust)).toMatchObject({
      ok: false,
      reason: 'UNSUPPORTED_FEATURE',
      message: expect.stringContaining('selective disclosure (tool_receipts[0].args_disclosure)'),
    });
    expect(verifyBundle(withTools({ ...toolEnvelope(), hash_algorithm: 'BLAKE3' }), trust)).toMatchObject({
      ok: false,
      reason: 'UNSUPPORTED_FEATURE',
      message: expect.stringContaining('BLAKE3'),
    });
  });
});
