import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/crypto/jcs.js';
import { sha256B64u } from '../../src/crypto/hash.js';
import { hashPolicy } from '../../src/policy/hash-policy.js';
import type { Wpc } from '../../src/policy/types.js';
import {
  approvalPolicyOf,
  carriedApprovalPolicy,
  toWpcPayload,
  UNDECLARED_ISSUER_DID,
} from '../../src/policy/wpc-payload.js';
import { validateCbPayload } from './clawbureau-wpc.js';

const policiesDir = new URL('../../policies/', import.meta.url);
const shipped = readdirSync(policiesDir)
  .filter((n) => n.endsWith('.json') && n !== 'groups.json' && !n.endsWith('.schema.json'))
  .sort();
const read = (name: string): Wpc => JSON.parse(readFileSync(new URL(name, policiesDir), 'utf8')) as Wpc;
const base = (): Wpc => read('change-mgmt-prod-approval.json');

function cbErrors(payload: unknown): string {
  return validateCbPayload(payload)
    ? ''
    : JSON.stringify(validateCbPayload.errors?.map((e) => `${e.instancePath} ${e.message}`));
}

describe('toWpcPayload: the Claw Bureau WPC v1 payload a policy is signed as', () => {
  it.each(shipped)('%s maps to a payload valid under work_policy_contract.v1.json', (file) => {
    const policy = read(file);
    const payload = toWpcPayload(policy);
    expect(cbErrors(payload)).toBe('');
    expect(payload).toMatchObject({
      policy_version: '1',
      policy_id: policy.policy_name,
      issuer_did: UNDECLARED_ISSUER_DID,
      // The gateway routes OpenRouter-through-fal as its "openai" provider with openrouter/ models.
      allowed_providers: ['openai'],
      allowed_models: ['openrouter/*'],
      metadata: { claw_approvals: policy },
    });
    expect(Object.keys(payload.metadata)).toEqual(['claw_approvals']);
  });

  it('hashes the JCS of the payload, not of the approval policy', () => {
    const hashed = hashPolicy(base());
    expect(hashed.canonical).toBe(canonicalJson(toWpcPayload(base())));
    expect(hashed.hash).toBe(sha256B64u(hashed.canonical));
    expect(hashed.hash).not.toBe(sha256B64u(canonicalJson(base())));
  });

  it.each([
    ['openai', ['openai']],
    ['anthropic', ['anthropic']],
    ['google', ['google']],
    ['openrouter-via-fal', ['openai']],
  ] as const)('provider %s -> allowed_providers %j', (provider, expected) => {
    const p = base();
    p.models = { ...p.models!, provider };
    expect(toWpcPayload(p).allowed_providers).toEqual(expected);
  });

  it('a policy without models leaves the gateway lists out rather than inventing them', () => {
    const p = base();
    delete p.models;
    const payload = toWpcPayload(p);
    expect(payload).not.toHaveProperty('allowed_providers');
    expect(payload).not.toHaveProperty('allowed_models');
    expect(cbErrors(payload)).toBe('');
  });

  it.each([
    [{ pii: 'redact_in_logs' }, 'hash_only'],
    [{ pii: 'deny' }, 'hash_only'],
    [{ export: 'deny' }, 'hash_only'],
    [{ pii: 'allow', export: 'deny' }, 'hash_only'],
    [{ pii: 'allow' }, undefined],
    [{ pii: 'allow', export: 'allow' }, undefined],
    [undefined, undefined],
  ] as const)('data_boundaries %j -> receipt_privacy_mode %s', (boundaries, mode) => {
    const p = base();
    if (boundaries) p.data_boundaries = { ...boundaries };
    else delete p.data_boundaries;
    expect(toWpcPayload(p).receipt_privacy_mode).toBe(mode);
  });

  it('copies egress and redaction rules from data_boundaries', () => {
    const p = base();
    p.data_boundaries = {
      pii: 'allow',
      egress_allowlist: ['api.example.com', '*.internal.example.com'],
      redaction_rules: [{ path: '$.messages[*].content', action: 'mask' }],
    };
    const payload = toWpcPayload(p);
    expect(payload.egress_allowlist).toEqual(['api.example.com', '*.internal.example.com']);
    expect(payload.redaction_rules).toEqual([{ path: '$.messages[*].content', action: 'mask' }]);
    expect(cbErrors(payload)).toBe('');
  });

  it('issuer_did comes from the policy when declared (a deliberate, hash-changing edit), never from a key', () => {
    const p = base();
    const undeclared = hashPolicy(p).hash;
    p.issuer_did = 'did:web:acme.example';
    expect(toWpcPayload(p).issuer_did).toBe('did:web:acme.example');
    expect(hashPolicy(p).hash).not.toBe(undeclared);
    expect(cbErrors(toWpcPayload(p))).toBe('');
  });
});

describe('approvalPolicyOf: the approval policy a signed payload carries', () => {
  it('reads metadata.claw_approvals of a WPC v1 payload', () => {
    const p = base();
    expect(approvalPolicyOf(JSON.parse(canonicalJson(toWpcPayload(p))))).toEqual(p);
  });

  it('returns a legacy payload (the approval policy signed before WPC v1) as it is', () => {
    const p = base();
    expect(approvalPolicyOf(p)).toBe(p);
  });

  const spoofs: [string, (payload: Record<string, unknown>) => void][] = [
    ['a wider model allowlist than the approval policy says', (x) => (x.allowed_models = ['*'])],
    ['no provider allowlist', (x) => delete x.allowed_providers],
    ['encrypted receipts where PII is restricted', (x) => (x.receipt_privacy_mode = 'encrypted')],
    ['a policy_id other than its policy_name', (x) => (x.policy_id = 'invoice-triage')],
    ['another issuer', (x) => (x.issuer_did = 'did:web:evil.example')],
    ['a gateway field with no source', (x) => (x.minimum_model_identity_tier = 'closed_opaque')],
    ['extra metadata', (x) => ((x.metadata as Record<string, unknown>).note = 'hi')],
    ['no approval policy', (x) => (x.metadata = {})],
    ['an approval policy of another version', (x) => (x.metadata = { claw_approvals: { wpc_version: '2' } })],
    ['metadata that is a list', (x) => (x.metadata = [])],
  ];
  it.each(spoofs)('refuses a WPC v1 payload with %s: ERR_POLICY_INVALID', (_why, spoil) => {
    const payload = JSON.parse(canonicalJson(toWpcPayload(base()))) as Record<string, unknown>;
    spoil(payload);
    expect(() => approvalPolicyOf(payload)).toThrow(expect.objectContaining({ code: 'ERR_POLICY_INVALID' }));
  });

  it.each([
    ['null', null],
    ['a list', [base()]],
    ['a string', 'policy'],
    ['an object of neither form', { policy_name: 'x' }],
    ['a legacy payload of another version', { ...base(), wpc_version: '2' }],
  ])('refuses %s: ERR_POLICY_INVALID', (_why, value) => {
    expect(() => approvalPolicyOf(value)).toThrow(expect.objectContaining({ code: 'ERR_POLICY_INVALID' }));
  });

  it('carriedApprovalPolicy reads either form without judging it (for best-effort channel claims)', () => {
    const p = base();
    expect(carriedApprovalPolicy(toWpcPayload(p))).toBe(p);
    expect(carriedApprovalPolicy(p)).toBe(p);
    expect(carriedApprovalPolicy({ policy_version: '1', metadata: 'x' })).toBeUndefined();
    expect(carriedApprovalPolicy(null)).toBeNull();
  });
});
