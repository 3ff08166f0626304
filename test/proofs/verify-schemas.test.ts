import { readdirSync, readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { checkBundleSchema } from '../../src/proofs/verify/bundle-schema.js';
import { CheckFailure } from '../../src/proofs/verify/check.js';
import type { BundleEnvelope } from '../../src/proofs/verify/envelope.js';
import { isDateTime } from '../../src/proofs/verify/schemas/formats.js';
import { eventChainEntry } from '../../src/proofs/verify/schemas/event-chain-entry.js';
import {
  bundledGatewayReceipt,
  gatewayReceiptEnvelope,
} from '../../src/proofs/verify/schemas/gateway-receipt.js';
import {
  bundledApprovalReceipt,
  humanApprovalReceipt,
} from '../../src/proofs/verify/schemas/human-approval-receipt.js';
import { bundledSideEffectReceipt } from '../../src/proofs/verify/schemas/side-effect-receipt.js';
import { coSignature, toolReceiptEntry } from '../../src/proofs/verify/schemas/tool-receipt.js';
import { clawBureauJson, clawBureauPath, upstreamPath } from '../helpers/clawbureau.js';

/**
 * Our validators (zod, in the repository) against Claw Bureau's own schema files (read from
 * ../shared, run by ajv with formats, as their verifier runs them) over one corpus: every
 * receipt and event of every proof_bundle conformance vector, a few receipts of our own making,
 * and mutated copies of all of them. Both must say valid or invalid alike, item by item.
 */
const POH = 'upstream/packages/schema/poh';
const schemaFiles = readdirSync(clawBureauPath(POH))
  .filter((f) => f.endsWith('.json'))
  .map(
    (f) =>
      JSON.parse(readFileSync(clawBureauPath(`${POH}/${f}`), 'utf8')) as { $schema?: string; $id: string },
  );

const ajv2020 = new Ajv2020({ strict: false });
addFormats.default(ajv2020);
for (const s of schemaFiles) if (s.$schema?.includes('2020-12')) ajv2020.addSchema(s);
const ajv07 = new Ajv({ strict: false });
addFormats.default(ajv07);

const BUNDLE = 'https://schemas.clawbureau.org/claw.poh.proof_bundle.v1.json';
const ref = (id: string) => ajv2020.getSchema(id)!;
const draft07 = (file: string) => ajv07.compile(schemaFiles.find((s) => s.$id.endsWith(`/${file}`))!);

type Theirs = ValidateFunction | ((v: unknown) => boolean);
const both =
  (...fns: Theirs[]) =>
  (v: unknown) =>
    fns.every((f) => f(v));

const PAIRS: [string, z.ZodType, Theirs, string][] = [
  ['event chain entry', eventChainEntry, ref(`${BUNDLE}#/properties/event_chain/items`), 'event'],
  [
    'gateway receipt (bundle form)',
    bundledGatewayReceipt,
    ref(`${BUNDLE}#/properties/receipts/items`),
    'gateway',
  ],
  [
    'gateway receipt (gateway_receipt_envelope.v1)',
    gatewayReceiptEnvelope,
    ref('https://schemas.clawbureau.org/claw.poh.gateway_receipt_envelope.v1.json'),
    'gateway',
  ],
  ['tool receipt (any form)', toolReceiptEntry, ref(`${BUNDLE}#/properties/tool_receipts/items`), 'tool'],
  ['co-signature', coSignature, ref('https://schemas.clawbureau.org/claw.poh.co_signature.v1.json'), 'cosig'],
  [
    'side-effect receipt (bundle form)',
    bundledSideEffectReceipt,
    ref(`${BUNDLE}#/properties/side_effect_receipts/items`),
    'side_effect',
  ],
  [
    'human approval receipt (bundle form)',
    bundledApprovalReceipt,
    ref(`${BUNDLE}#/properties/human_approval_receipts/items`),
    'approval',
  ],
  [
    'human approval receipt (human_approval_receipt.v1, and the bundle form)',
    humanApprovalReceipt.refine((r) => r.agent_did.startsWith('did:')),
    both(
      draft07('human_approval_receipt.v1.json'),
      ref(`${BUNDLE}#/properties/human_approval_receipts/items`),
    ),
    'approval',
  ],
];

// ---- The corpus ------------------------------------------------------------------------------

type Kind = 'event' | 'gateway' | 'tool' | 'cosig' | 'side_effect' | 'approval';
const corpus: Record<Kind, unknown[]> = {
  event: [],
  gateway: [],
  tool: [],
  cosig: [],
  side_effect: [],
  approval: [],
};

const manifest = clawBureauJson<{ vectors: { kind: string; path: string }[] }>(
  'upstream/packages/schema/fixtures/protocol-conformance/manifest.v1.json',
);
const bundles = manifest.vectors
  .filter((x) => x.kind === 'proof_bundle')
  .map(
    (v) => JSON.parse(readFileSync(upstreamPath(v.path), 'utf8')) as { payload: Record<string, unknown[]> },
  );
for (const { payload: p } of bundles) {
  corpus.event.push(...(p.event_chain ?? []));
  corpus.gateway.push(...(p.receipts ?? []));
  corpus.tool.push(...(p.tool_receipts ?? []));
  corpus.side_effect.push(...(p.side_effect_receipts ?? []));
  corpus.approval.push(...(p.human_approval_receipts ?? []));
  for (const t of p.tool_receipts ?? [])
    corpus.cosig.push(...((t as { co_signatures?: unknown[] }).co_signatures ?? []));
}

const HASH = 'mo72_ab1UHvxY2DERZG2Tn12KNl2e_NSUrVDEQ5-Jds';
const DID = 'did:key:z6MkneMkZqwqRiU5mJzSG3kDwzt9P8C59N4NGTfBLfSGE7c7';
// Receipts of our own making, so that every optional part of the schemas is exercised.
corpus.gateway.push({
  envelope_version: '1',
  envelope_type: 'gateway_receipt',
  payload: {
    receipt_version: '1',
    receipt_id: 'rcpt_full',
    gateway_id: 'gw_full',
    provider: 'anthropic',
    model: 'claude-test',
    request_hash_b64u: HASH,
    response_hash_b64u: HASH,
    tokens_input: 1,
    tokens_output: 2,
    latency_ms: 3,
    timestamp: '2026-02-12T00:00:00Z',
    binding: {
      run_id: 'run_1',
      event_hash_b64u: HASH,
      nonce: 'n',
      policy_hash: 'p',
      token_scope_hash_b64u: HASH,
      span_id: 's1',
      parent_span_id: 's0',
      tool_span_id: 's0',
      phase: 'execution',
      attribution_confidence: 0.5,
    },
    metadata: {
      model_identity: {
        model_identity_version: '1',
        tier: 'closed_provider_manifest',
        model: { provider: 'anthropic', name: 'claude-test', family: 'claude' },
        gateway_observed: {
          gateway_id: DID,
          observed_at: '2026-02-12T00:00:00.5+01:00',
          transport: { provider_api: 'messages', http_status: 200, latency_ms: 3 },
        },
        artifacts: {
          provider_manifest: {
            manifest_type: 'provider_build_manifest',
            hash_b64u: HASH,
            signature: {
              signer_did: DID,
              signature_envelope_ref: { resource_type: 'env', resource_hash_b64u: HASH },
            },
          },
          openweights: { weights: [{ hash_b64u: HASH, size_bytes: 1 }], tokenizer: {} },
          tee_measurement: {
            attestation_report_ref: { resource_type: 'r', resource_hash_b64u: HASH },
            tcb: {},
          },
        },
      },
      model_identity_hash_b64u: HASH,
      audit_result_refs: [{ resource_hash_b64u: HASH, uri: 'https://example.org' }],
      x402_payment_ref: 'pay_1',
      x402_amount_minor: 100,
      x402_currency: 'USD',
      x402_network: 'base',
      x402_payment_auth_hash_b64u: HASH,
      log_inclusion_proof: {
        proof_version: '1',
        log_id: 'log',
        tree_size: 5,
        leaf_hash_b64u: HASH,
        root_hash_b64u: HASH,
        audit_path: [HASH],
        root_published_at: '2026-02-12T00:00:00Z',
        root_signature: { signer_did: DID, sig_b64u: HASH },
      },
      kinematic_fingerprint: {
        ttft_ms: 1,
        itl_p50_ms: 1,
        itl_p95_ms: 2,
        itl_stddev_ms: 0.5,
        chunk_count: 3,
        burst_signature_b64u: 'b',
        confidence_score: 0.9,
      },
      sentinel_anomaly_report: { threat_score: 10, anomaly_type: 'benign', confidence: 1 },
      vendor_note: 'free-form keys are allowed',
    },
  },
  payload_hash_b64u: HASH,
  hash_algorithm: 'SHA-256',
  signature_b64u: HASH,
  algorithm: 'Ed25519',
  signer_did: DID,
  issued_at: '2026-02-12T00:00:01Z',
  expires_at: '2026-02-13T00:00:01Z',
});
corpus.approval.push({
  receipt_version: '1',
  receipt_id: 'har_ours',
  approval_type: 'auto_approve',
  approver_subject: 'policy:prod',
  approver_method: 'policy_auto',
  agent_did: DID,
  scope_hash_b64u: HASH,
  scope_summary: 'Search the knowledge base',
  policy_hash_b64u: HASH,
  minted_capability_id: 'jti',
  minted_capability_ttl_seconds: 900,
  plan_hash_b64u: HASH,
  evidence_required: ['receipt'],
  hash_algorithm: 'SHA-256',
  timestamp: '2026-02-12T00:00:00.000Z',
  binding: {
    run_id: 'job:1',
    event_hash_b64u: HASH,
    policy_hash: HASH,
    token_scope_hash_b64u: HASH,
    tool_span_id: 's1',
  },
});

// ---- Mutations -------------------------------------------------------------------------------

const STRANGE_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e300,
  '',
  ' ',
  'x',
  '1',
  '2',
  'not base64!',
  'AAAAAAA',
  '\u{1F600}'.repeat(8),
  'x'.repeat(1025),
  'did:web:example.org',
  '2026-02-30T00:00:00Z',
  '2026-02-12 00:00:00z',
  '2026-02-12T00:00:00',
  '2016-12-31T23:59:60Z',
  '2016-12-31T23:59:60+01:00',
  'SHA-256',
  'BLAKE3',
  'Ed25519',
  'bogus',
  [],
  {},
];

/** Copies of `value` with one thing changed: a key dropped or added, or one value replaced. */
function mutations(value: unknown, depth = 0): unknown[] {
  const out: unknown[] = [];
  if (Array.isArray(value)) {
    out.push(
      [],
      [...value, value[0]],
      Array.from({ length: 17 }, () => value[0]),
    );
    if (depth < 4)
      value.forEach((item, i) => {
        for (const m of mutations(item, depth + 1)) out.push(value.map((x, j) => (j === i ? m : x)));
      });
    return out;
  }
  if (typeof value !== 'object' || value === null) return STRANGE_VALUES.filter((s) => s !== value);
  const record = value as Record<string, unknown>;
  out.push({ ...record, x_unknown: 'x' });
  for (const key of Object.keys(record)) {
    const { [key]: _dropped, ...rest } = record;
    out.push(rest);
    if (depth < 4) for (const m of mutations(record[key], depth + 1)) out.push({ ...record, [key]: m });
  }
  return out;
}

/** Mutations of a bundle envelope down to its payload's entries, not inside them. */
const shallowMutations = (value: unknown): unknown[] => mutations(value, 1);

describe('our receipt validators agree with ajv over Claw Bureau schema files', () => {
  it.each(PAIRS)('%s', (_name, ours, theirs, kind) => {
    const items = corpus[kind as Kind].flatMap((base) => [base, ...mutations(base)]);
    const disagreements: string[] = [];
    let valid = 0;
    for (const item of items) {
      const want = theirs(item) as boolean;
      const got = ours.safeParse(item).success;
      if (want) valid += 1;
      if (want !== got) disagreements.push(`${JSON.stringify(item).slice(0, 300)}: ajv ${want}, ours ${got}`);
    }
    expect(disagreements.slice(0, 5)).toEqual([]);
    // The corpus exercises both answers.
    expect(valid).toBeGreaterThan(0);
    expect(items.length - valid).toBeGreaterThan(valid);
  });

  it('the bundle schema step (envelope, payload, every entry) agrees with proof_bundle_envelope.v1', () => {
    const theirs = ref('https://schemas.clawbureau.org/claw.poh.proof_bundle_envelope.v1.json');
    const ours = (env: unknown) => {
      try {
        checkBundleSchema(env as BundleEnvelope);
        return true;
      } catch (err) {
        if (err instanceof CheckFailure) return false;
        throw err;
      }
    };
    // Bundles with components we do not evaluate (their shape is not ours to check) are left out.
    const base = bundles.filter((b) => b.payload.rate_limit_claims === undefined);
    base.push({
      ...base[0]!,
      payload: { ...base[0]!.payload, metadata: { harness: { id: 'h', version: '1' } } as never },
    });
    const items = base.flatMap((b) => [b, ...shallowMutations(b)]);
    const disagreements = items
      .filter((item) => (theirs(item) as boolean) !== ours(item))
      .map((item) => `${JSON.stringify(item).slice(0, 300)}: ajv ${String(theirs(item))}`);
    expect(disagreements.slice(0, 5)).toEqual([]);
    expect(items.filter((i) => theirs(i)).length).toBeGreaterThan(0);
  });

  it('date-time agrees with ajv-formats on the edge cases', () => {
    const cases = [
      '2026-02-12T00:00:00Z',
      '2026-02-12t00:00:00z',
      '2026-02-12 00:00:00+01:00',
      '2026-02-12T00:00:00+0100',
      '2024-02-29T00:00:00Z',
      '2026-02-29T00:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-02-12T24:00:00Z',
      '2026-02-12T00:00:00',
      '2016-12-31T23:59:60Z',
      '2016-12-31T22:59:60-01:00',
      '2016-12-31T23:59:60+01:00',
      '2026-02-12T00:00:00.123456Z',
      '2026-02-12T00:00:00+24:00',
      '2026-02-12TT00:00:00Z',
      '20260212T000000Z',
    ];
    const theirs = ajv2020.compile({ type: 'string', format: 'date-time' });
    for (const c of cases) expect(isDateTime(c), c).toBe(theirs(c));
  });
});
