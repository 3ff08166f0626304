import { createHash } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { canonicalize as independentJcs } from 'json-canonicalize';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import { type Envelope, sealEnvelope } from '../../src/crypto/envelope.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import { type BundleFailure, type BundleTrust, verifyBundle } from '../../src/proofs/verify-bundle.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import type { SigningKey } from '../../src/tokens/signing-key.js';
import { base58Decode } from '../helpers/base58.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, editJson, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { newKey } from '../helpers/state.js';

/** Every reason verifyBundle may name; the type check below fails if one is missing. */
const BUNDLE_FAILURES = [
  'BUNDLE_ENVELOPE_MALFORMED',
  'BUNDLE_ENVELOPE_TYPE_MISMATCH',
  'BUNDLE_UNSUPPORTED_ALGORITHM',
  'BUNDLE_HASH_MISMATCH',
  'BUNDLE_SIGNER_DID_INVALID',
  'BUNDLE_SIGNER_UNTRUSTED',
  'BUNDLE_SIGNATURE_INVALID',
  'BUNDLE_EXPIRED',
  'BUNDLE_TOO_LARGE',
  'BUNDLE_ISSUED_AT_MISMATCH',
  'BUNDLE_PAYLOAD_INVALID',
  'UNSUPPORTED_FEATURE',
  'AGENT_DID_MISMATCH',
  'EVENT_CHAIN_INVALID',
  'EVENT_RUN_ID_MISMATCH',
  'EVENT_CHAIN_BROKEN',
  'EVENT_HASH_MISMATCH',
  'EVENT_PAYLOAD_MISMATCH',
  'RECEIPT_ENVELOPE_MALFORMED',
  'RECEIPT_ENVELOPE_TYPE_MISMATCH',
  'RECEIPT_UNSUPPORTED_ALGORITHM',
  'RECEIPT_HASH_MISMATCH',
  'RECEIPT_SIGNER_DID_INVALID',
  'RECEIPT_SIGNER_UNTRUSTED',
  'RECEIPT_SIGNATURE_INVALID',
  'RECEIPT_BINDING_MISMATCH',
  'RECEIPT_REPLAYED',
  'TOOL_RECEIPT_INVALID',
  'TOOL_RECEIPT_BINDING_MISMATCH',
  'TOOL_RECEIPT_EXPIRED',
  'TOOL_RECEIPT_HASH_MISMATCH',
  'TOOL_RECEIPT_SIGNATURE_INVALID',
  'CO_SIGNATURE_INVALID',
  'SIDE_EFFECT_RECEIPT_INVALID',
  'SIDE_EFFECT_RECEIPT_BINDING_MISMATCH',
  'APPROVAL_RECEIPT_INVALID',
  'APPROVAL_RECEIPT_BINDING_MISMATCH',
  'CAUSAL_BINDING_INVALID',
  'SIDE_EFFECT_NOT_ANCHORED',
  'APPROVAL_NOT_ANCHORED',
  'POLICY_BINDING_MISMATCH',
  'PLAN_BINDING_MISMATCH',
  'TOKEN_BINDING_MISMATCH',
  'APPROVAL_QUORUM_NOT_MET',
  'APPROVAL_BY_REQUESTER',
  'APPROVAL_GROUPS_NOT_DISTINCT',
  'APPROVAL_SNAPSHOT_INVALID',
  'APPROVAL_WITHDRAWN_COUNTED',
  'APPROVAL_RULE_MISMATCH',
] as const satisfies readonly BundleFailure[];
type Unlisted = Exclude<BundleFailure, (typeof BUNDLE_FAILURES)[number]>;
const everyReasonListed: [Unlisted] extends [never] ? true : false = true;
const KNOWN_REASONS = new Set<string>(BUNDLE_FAILURES);

interface ChainEvent {
  event_id: string;
  run_id: string;
  event_type: string;
  timestamp: string;
  payload_hash_b64u: string;
  prev_hash_b64u: string | null;
  event_hash_b64u: string;
}
interface ApprovalReceipt {
  receipt_version: string;
  agent_did: string;
  approval_type: 'explicit_approve' | 'explicit_deny' | 'auto_approve';
  approver_subject: string;
  plan_hash_b64u: string;
  policy_hash_b64u: string;
  scope_hash_b64u: string;
  minted_capability_id?: string;
  binding: { run_id: string; event_hash_b64u: string; policy_hash: string; token_scope_hash_b64u: string };
}
interface StepMeta {
  step: string;
  tool: string;
  gate: string;
  status: string;
  cst: null | {
    jti: string;
    token_hash: string;
    token_scope_hash_b64u: string;
    sub: string;
    aud: string;
    scope: string[];
  };
}
interface Payload {
  agent_did: string;
  bundle_id: string;
  bundle_version: string;
  event_chain: ChainEvent[];
  human_approval_receipts?: ApprovalReceipt[];
  receipts?: Envelope<Record<string, unknown>>[];
  metadata: {
    claw_approvals: {
      job_id: string;
      status: string;
      plan_hash_b64u: string;
      policy: { name: string; policy_hash_b64u: string };
      mattermost: { approval_post_ids: string[]; root_post_id: string };
      steps: StepMeta[];
      unverified_receipts: { step: string; failure: string; signer_did: string; envelope_json: string }[];
    };
    event_payloads: { event_id: string; payload: Record<string, unknown> }[];
  };
}
type Bundle = Envelope<Payload, 'proof_bundle'>;

const sha256B64u = (text: string) => createHash('sha256').update(text, 'utf8').digest('base64url');

const perTest: TestEngine[] = [];
afterEach(async () => {
  await Promise.all(perTest.splice(0).map((t) => t.close()));
});

/** A gateway receipt in the Claw Bureau shape, deliberately not in sorted key order. */
function gatewayReceipt(key: SigningKey, binding: { run_id: string; event_hash_b64u: string }, id: string) {
  const payload = {
    receipt_version: '1',
    receipt_id: id,
    gateway_id: 'gw_test',
    provider: 'anthropic',
    model: 'claude-test',
    request_hash_b64u: sha256B64u(`request ${id}`),
    response_hash_b64u: sha256B64u(`response ${id}`),
    tokens_input: 10,
    tokens_output: 20,
    latency_ms: 123,
    timestamp: '2026-11-21T10:00:00.000Z',
    binding: { ...binding, nonce: `nonce_${id}` },
  };
  return sealEnvelope({
    type: 'gateway_receipt',
    payload,
    payloadHashB64u: bundlePayloadHash(payload),
    key,
    issuedAt: new Date('2026-11-21T10:00:01.000Z'),
  });
}

async function bundleOf(ctx: EngineContext, jobId: number): Promise<{ text: string; env: Bundle }> {
  const job = await ctx.db
    .selectFrom('jobs')
    .select('bundle_id')
    .where('id', '=', jobId)
    .executeTakeFirstOrThrow();
  const row = await ctx.db
    .selectFrom('bundles')
    .selectAll()
    .where('bundle_id', '=', job.bundle_id!)
    .executeTakeFirstOrThrow();
  expect(row.job_id).toBe(jobId);
  return { text: row.envelope, env: JSON.parse(row.envelope) as Bundle };
}

const APPROVAL_POSTS = ['approvalpostalice000000001', 'approvalpostchioma00000002'];

/**
 * A service-context job run to completion: two approvals (with their posts) for post-summary,
 * every step claimed, redeemed and reported; search-kb reports one receipt from the trusted
 * gateway bound to its token_claimed event and one from an unknown gateway.
 */
async function completedJob(opened: TestEngine[] = perTest) {
  const gateway = newKey();
  const stranger = newKey();
  // Receipts on one step only: this copy of the policy does not require them on every success
  // (that rule is tested in test/jobs/receipts-required.test.ts).
  const e = await createTestEngine({
    gatewaySigners: [gateway.did],
    edit: (dir) =>
      editJson(dir, 'mattermost-agent-prod.json', (p) => {
        (p.attestation as Record<string, unknown>).require_gateway_receipts = false;
      }),
  });
  opened.push(e);
  const { ctx } = e;
  const job = await opsJob(ctx);
  const row = await ctx.db
    .selectFrom('jobs')
    .selectAll()
    .where('id', '=', job.jobId)
    .executeTakeFirstOrThrow();
  for (const [i, userId] of [U.alice, U.chioma].entries()) {
    const d = await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId,
      post: { postId: APPROVAL_POSTS[i]!, channelId: OPS.channel, rootId: row.root_post_id! },
    });
    expect(d.code).toBe(i === 0 ? 'APPROVAL_COUNTED' : 'QUORUM_MET');
  }
  let good: Envelope<unknown> | undefined;
  let bad: Envelope<unknown> | undefined;
  for (const step of ['search-kb', 'read-runbook', 'fetch-status', 'post-summary']) {
    const c = await claimToken(ctx, { jobId: job.jobId, step, agentId: OPS.executor });
    await redeemToken(ctx, c.token);
    const receipts: unknown[] = [];
    if (step === 'search-kb') {
      expect(c.runId).toBe(`job:${job.jobId}`);
      good = gatewayReceipt(gateway, { run_id: c.runId, event_hash_b64u: c.eventHash }, 'rcpt_good');
      bad = gatewayReceipt(stranger, { run_id: c.runId, event_hash_b64u: c.eventHash }, 'rcpt_stranger');
      receipts.push(good, bad);
    }
    const r = await reportResult(ctx, {
      jobId: job.jobId,
      step,
      agentId: OPS.executor,
      status: 'succeeded',
      summary: `${step} done`,
      receipts,
    });
    if (step === 'search-kb') {
      expect(r.receipts.map((x) => [x.verified, x.failure])).toEqual([
        [true, null],
        [false, 'RECEIPT_SIGNER_UNTRUSTED'],
      ]);
    }
    if (step === 'post-summary') expect(r.ended?.status).toBe('completed');
  }
  const trust: BundleTrust = { trustsSigner: ctx.keyRing.trusts, gatewaySigners: ctx.gatewaySigners };
  return {
    ctx,
    job,
    row,
    gateway,
    stranger,
    good: good!,
    bad: bad!,
    trust,
    ...(await bundleOf(ctx, job.jobId)),
  };
}

/** The payload after `mutate`, signed again with `key`: the envelope is sound, only the content lies. */
function resign(env: Bundle, key: SigningKey, mutate: (p: Payload) => void): Bundle {
  const payload = structuredClone(env.payload);
  mutate(payload);
  return sealEnvelope({
    type: 'proof_bundle',
    payload,
    payloadHashB64u: bundlePayloadHash(payload),
    key,
    issuedAt: new Date(env.issued_at),
  });
}

/** A different character of the same kind where there is one, so that many flips still parse. */
function flipChar(ch: string): string {
  const swaps: Record<string, string> = {
    '-': '_',
    _: '-',
    '"': "'",
    '{': '[',
    '}': ']',
    '[': '{',
    ']': '}',
    ':': ';',
    ',': '.',
    '.': ',',
    ' ': '_',
    '\\': '/',
  };
  if (/[0-8]/.test(ch)) return String(Number(ch) + 1);
  if (ch === '9') return '0';
  if (/[a-yA-Y]/.test(ch)) return String.fromCharCode(ch.charCodeAt(0) + 1);
  if (ch === 'z') return 'a';
  if (ch === 'Z') return 'A';
  return swaps[ch] ?? (ch === 'x' ? 'y' : 'x');
}

/** What a verifier makes of `text`: unparseable, or the verdict. */
function verdictOfText(text: string, trust: BundleTrust) {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return 'unparseable' as const;
  }
  return verifyBundle(parsed, trust);
}

describe(`sealed proof bundles (${dialectName})`, () => {
  it('lists every BundleFailure code', () => {
    expect(everyReasonListed).toBe(true);
  });

  it('a completed job seals a bundle that verifies, with sorted keys and SPEC section 5 hashes', async () => {
    const { ctx, job, env, text, good, trust } = await completedJob();
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: true,
      bundleId: env.payload.bundle_id,
      signerDid: ctx.keyRing.active.did,
      receipts: 1,
      approvals: 5,
    });
    expect(text).toBe(JSON.stringify(env));
    expect(env).toMatchObject({
      envelope_version: '1',
      envelope_type: 'proof_bundle',
      hash_algorithm: 'SHA-256',
      algorithm: 'Ed25519',
      signer_did: ctx.keyRing.active.did,
    });
    const p = env.payload;
    expect(p.bundle_version).toBe('1');
    expect(p.bundle_id).toMatch(/^pb_[A-Za-z0-9_-]{22,}$/);
    expect(p.agent_did).toBe(env.signer_did);
    expect(env.payload_hash_b64u).toBe(sha256B64u(JSON.stringify(p)));

    // Our parts have sorted keys at every level: JSON.stringify equals an independent JCS.
    const { receipts, ...ours } = p;
    expect(JSON.stringify(ours)).toBe(independentJcs(ours));
    // Gateway receipts keep the key order their signer hashed.
    expect(receipts).toHaveLength(1);
    expect(JSON.stringify(receipts![0])).toBe(JSON.stringify(good));
    expect(JSON.stringify(receipts![0])).not.toBe(independentJcs(receipts![0]));

    // Event chain: SPEC section 5 formula, recomputed here.
    const runId = `job:${job.jobId}`;
    const payloads = new Map(p.metadata.event_payloads.map((x) => [x.event_id, x.payload]));
    expect(p.metadata.event_payloads.map((x) => x.event_id)).toEqual(p.event_chain.map((x) => x.event_id));
    let prev: string | null = null;
    for (const ev of p.event_chain) {
      expect(ev.run_id).toBe(runId);
      expect(ev.prev_hash_b64u).toBe(prev);
      expect(ev.payload_hash_b64u).toBe(sha256B64u(independentJcs(payloads.get(ev.event_id))));
      const header = JSON.stringify({
        event_id: ev.event_id,
        run_id: ev.run_id,
        event_type: ev.event_type,
        timestamp: ev.timestamp,
        payload_hash_b64u: ev.payload_hash_b64u,
        prev_hash_b64u: ev.prev_hash_b64u,
      });
      expect(ev.event_hash_b64u).toBe(sha256B64u(header));
      prev = ev.event_hash_b64u;
    }
    expect(p.event_chain[0]!.event_type).toBe('job_created');
    expect(p.event_chain.at(-1)!.event_type).toBe('job_ended');
    expect(env.issued_at).toBe(p.event_chain.at(-1)!.timestamp);
    // Everything stored is in the bundle, in order.
    const stored = await ctx.db
      .selectFrom('job_events')
      .select(['event_id', 'event_hash_b64u'])
      .where('job_id', '=', job.jobId)
      .orderBy('seq')
      .execute();
    expect(p.event_chain.map((x) => [x.event_id, x.event_hash_b64u])).toEqual(
      stored.map((x) => [x.event_id, x.event_hash_b64u]),
    );
  });

  it('carries one approval receipt per counted approval and one auto_approve per auto step', async () => {
    const { env, job, row, ctx } = await completedJob();
    const p = env.payload;
    const byHash = new Map(p.event_chain.map((x) => [x.event_hash_b64u, x]));
    const payloadOf = new Map(p.metadata.event_payloads.map((x) => [x.event_id, x.payload]));
    const receipts = p.human_approval_receipts!;
    const pointed = receipts.map((r) => {
      const ev = byHash.get(r.binding.event_hash_b64u)!;
      expect(ev).toBeDefined();
      expect(r.binding.run_id).toBe(`job:${job.jobId}`);
      expect(r.agent_did).toBe(p.agent_did);
      expect(r.receipt_version).toBe('1');
      expect(r.policy_hash_b64u).toBe(row.policy_hash_b64u);
      expect(r.binding.policy_hash).toBe(row.policy_hash_b64u);
      expect(r.plan_hash_b64u).toBe(row.plan_hash_b64u);
      expect(r.binding.token_scope_hash_b64u).toBe(r.scope_hash_b64u);
      const body = payloadOf.get(ev.event_id)!;
      const cst = p.metadata.claw_approvals.steps.find((s) => s.step === body.step)!.cst!;
      expect(r.scope_hash_b64u).toBe(cst.token_scope_hash_b64u);
      expect(r.minted_capability_id).toBe(cst.jti);
      return [r.approval_type, ev.event_type, body.step, r.approver_subject, body.user_id ?? null];
    });
    expect(pointed).toEqual([
      ['auto_approve', 'token_minted', 'search-kb', 'policy:mattermost-agent-prod', null],
      ['auto_approve', 'token_minted', 'read-runbook', 'policy:mattermost-agent-prod', null],
      ['auto_approve', 'token_minted', 'fetch-status', 'policy:mattermost-agent-prod', null],
      ['explicit_approve', 'approval_recorded', 'post-summary', U.alice, U.alice],
      ['explicit_approve', 'approval_recorded', 'post-summary', U.chioma, U.chioma],
    ]);
    const meta = p.metadata.claw_approvals;
    expect(meta).toMatchObject({
      job_id: `job:${job.jobId}`,
      status: 'completed',
      plan_hash_b64u: row.plan_hash_b64u,
      policy: { name: 'mattermost-agent-prod', policy_hash_b64u: row.policy_hash_b64u },
      mattermost: { approval_post_ids: APPROVAL_POSTS, root_post_id: row.root_post_id },
    });
    const tokens = await ctx.db.selectFrom('tokens').selectAll().where('job_id', '=', job.jobId).execute();
    expect(meta.steps.map((s) => [s.step, s.status, s.cst?.jti, s.cst?.token_hash])).toEqual(
      ['search-kb', 'read-runbook', 'fetch-status', 'post-summary'].map((step) => {
        const t = tokens.find((x) => x.step_id === step)!;
        return [step, 'succeeded', t.jti, t.token_hash];
      }),
    );
  });

  it('keeps an unverifiable gateway receipt in metadata, never in receipts, never dropped', async () => {
    const { env, bad, good, stranger } = await completedJob();
    const p = env.payload;
    expect(p.receipts!.map((r) => r.signer_did)).not.toContain(stranger.did);
    expect(p.receipts).toEqual([good]);
    expect(p.metadata.claw_approvals.unverified_receipts).toEqual([
      {
        step: 'search-kb',
        failure: 'RECEIPT_SIGNER_UNTRUSTED',
        signer_did: stranger.did,
        envelope_json: JSON.stringify(bad),
      },
    ]);
    // The step_result event records both, with the hash of each envelope.
    const result = p.metadata.event_payloads
      .map((x) => x.payload)
      .find((x) => x.step === 'search-kb' && 'receipts' in x)!;
    expect(result.receipts).toEqual([
      expect.objectContaining({ receipt_id: 'rcpt_good', verified: true, failure: null }),
      expect.objectContaining({
        receipt_id: 'rcpt_stranger',
        verified: false,
        failure: 'RECEIPT_SIGNER_UNTRUSTED',
        envelope_hash_b64u: sha256B64u(JSON.stringify(bad)),
      }),
    ]);
  });

  it('the envelope signature verifies with an independent Ed25519 over the did:key', async () => {
    const { env } = await completedJob();
    const m = /^did:key:z([1-9A-HJ-NP-Za-km-z]+)$/.exec(env.signer_did);
    expect(m).not.toBeNull();
    const bytes = base58Decode(m![1]!)!;
    expect(bytes).toHaveLength(34);
    expect([bytes[0], bytes[1]]).toEqual([0xed, 0x01]);
    const publicKey = bytes.slice(2);
    const signature = new Uint8Array(Buffer.from(env.signature_b64u, 'base64url'));
    const message = new TextEncoder().encode(env.payload_hash_b64u);
    expect(ed25519.verify(signature, message, publicKey)).toBe(true);
    // And not over anything else.
    expect(ed25519.verify(signature, new TextEncoder().encode(`${env.payload_hash_b64u}x`), publicKey)).toBe(
      false,
    );
  });

  it('a denied job seals an explicit_deny receipt pointing at its step_denied event', async () => {
    const e = await createTestEngine();
    perTest.push(e);
    const { ctx } = e;
    const job = await opsJob(ctx);
    const d = await decideStep(ctx, {
      kind: 'deny',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.alice,
      reason: 'not now',
    });
    expect(d.code).toBe('STEP_DENIED');
    expect(d.ended?.status).toBe('denied');
    const { env } = await bundleOf(ctx, job.jobId);
    expect(verifyBundle(env, { trustsSigner: ctx.keyRing.trusts, gatewaySigners: new Set() })).toMatchObject({
      ok: true,
    });
    const p = env.payload;
    const deny = p.human_approval_receipts!.filter((r) => r.approval_type === 'explicit_deny');
    expect(deny).toHaveLength(1);
    const ev = p.event_chain.find((x) => x.event_hash_b64u === deny[0]!.binding.event_hash_b64u)!;
    expect(ev.event_type).toBe('step_denied');
    expect(deny[0]).toMatchObject({
      approver_subject: U.alice,
      agent_did: p.agent_did,
      binding: { run_id: `job:${job.jobId}` },
    });
    expect(p.human_approval_receipts!.filter((r) => r.approval_type === 'explicit_approve')).toEqual([]);
    expect(p.metadata.claw_approvals.status).toBe('denied');
    expect(p.receipts).toBeUndefined();
  });

  it('flipping any character of the sealed envelope text never verifies', async () => {
    const { text, trust } = await completedJob();
    expect(verdictOfText(text, trust)).toMatchObject({ ok: true });
    const payloadStart = text.indexOf('"payload":') + '"payload":'.length;
    const payloadEnd = text.lastIndexOf(',"payload_hash_b64u":');
    expect(payloadStart).toBeGreaterThan(10);
    expect(payloadEnd).toBeGreaterThan(payloadStart);
    // Every position outside the payload (envelope fields, signature, issued_at), and 300
    // positions spread over the payload.
    const positions = new Set<number>();
    for (let i = 0; i < payloadStart; i++) positions.add(i);
    for (let i = payloadEnd; i < text.length; i++) positions.add(i);
    for (let k = 0; k < 300; k++)
      positions.add(payloadStart + Math.floor((k * (payloadEnd - payloadStart)) / 300));
    const accepted: string[] = [];
    const unnamed: string[] = [];
    const reasons = new Map<string, number>();
    for (const i of positions) {
      const flipped = text.slice(0, i) + flipChar(text[i]!) + text.slice(i + 1);
      expect(flipped).not.toBe(text);
      const v = verdictOfText(flipped, trust);
      const label = `${i}:${JSON.stringify(text.slice(Math.max(0, i - 20), i + 20))}`;
      if (v === 'unparseable') {
        reasons.set('unparseable', (reasons.get('unparseable') ?? 0) + 1);
      } else if (v.ok) {
        accepted.push(label);
      } else {
        if (!KNOWN_REASONS.has(v.reason)) unnamed.push(`${label} ${v.reason}`);
        reasons.set(v.reason, (reasons.get(v.reason) ?? 0) + 1);
      }
    }
    expect(accepted).toEqual([]);
    expect(unnamed).toEqual([]);
    expect(positions.size).toBeGreaterThan(600);
    // The flips exercise the named checks, not only the JSON parser.
    for (const r of ['BUNDLE_HASH_MISMATCH', 'BUNDLE_SIGNATURE_INVALID', 'BUNDLE_ENVELOPE_MALFORMED']) {
      expect(reasons.get(r) ?? 0).toBeGreaterThan(0);
    }
  });

  it('issued_at outside the signed payload is tied to the last event: moving it fails', async () => {
    const { env, trust } = await completedJob();
    const later = { ...env, issued_at: '2026-11-21T10:00:01.000Z' };
    expect(verifyBundle(later, trust)).toMatchObject({ ok: false, reason: 'BUNDLE_ISSUED_AT_MISMATCH' });
    const sameInstant = { ...env, issued_at: '2026-11-21T10:00:00Z' };
    expect(verifyBundle(sameInstant, trust)).toMatchObject({
      ok: false,
      reason: 'BUNDLE_ISSUED_AT_MISMATCH',
    });
  });

  type Tamper = (p: Payload, x: { gateway: SigningKey; bad: Envelope<unknown> }) => void;
  const explicit = (p: Payload) =>
    p.human_approval_receipts!.filter((r) => r.approval_type === 'explicit_approve');
  const stepMeta = (p: Payload, step: string) =>
    p.metadata.claw_approvals.steps.find((s) => s.step === step)!;
  const tampers: [string, BundleFailure, Tamper][] = [
    [
      'an event payload in metadata.event_payloads',
      'EVENT_PAYLOAD_MISMATCH',
      (p) => {
        const approval = p.metadata.event_payloads.find((x) => x.payload.user_id === U.alice)!;
        approval.payload.user_id = U.bruno;
      },
    ],
    [
      'an event payload left out of the metadata',
      'EVENT_PAYLOAD_MISMATCH',
      (p) => {
        p.metadata.event_payloads.splice(2, 1);
      },
    ],
    [
      'two approval receipts swapping their bindings',
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      (p) => {
        const [a, b] = explicit(p);
        [a!.binding, b!.binding] = [b!.binding, a!.binding];
      },
    ],
    [
      'an approval receipt bound to an event of no chain',
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      (p) => {
        explicit(p)[0]!.binding.event_hash_b64u = sha256B64u('elsewhere');
      },
    ],
    [
      'an approval receipt bound to another run',
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      (p) => {
        explicit(p)[0]!.binding.run_id = 'job:999999';
      },
    ],
    [
      'a CST scope in metadata',
      'TOKEN_BINDING_MISMATCH',
      (p) => {
        stepMeta(p, 'post-summary').cst!.scope.push('tool:exec');
      },
    ],
    [
      'a CST jti in metadata',
      'TOKEN_BINDING_MISMATCH',
      (p) => {
        stepMeta(p, 'search-kb').cst!.jti = '00000000-0000-4000-8000-000000000000';
      },
    ],
    [
      'an approval receipt scope hash',
      'TOKEN_BINDING_MISMATCH',
      (p) => {
        const r = explicit(p)[0]!;
        r.scope_hash_b64u = stepMeta(p, 'search-kb').cst!.token_scope_hash_b64u;
      },
    ],
    [
      'the policy hash of an approval receipt',
      'POLICY_BINDING_MISMATCH',
      (p) => {
        explicit(p)[1]!.policy_hash_b64u = sha256B64u('another policy');
      },
    ],
    [
      'the policy hash of an approval receipt binding',
      'POLICY_BINDING_MISMATCH',
      (p) => {
        explicit(p)[1]!.binding.policy_hash = sha256B64u('another policy');
      },
    ],
    [
      'the policy named in metadata',
      'POLICY_BINDING_MISMATCH',
      (p) => {
        p.metadata.claw_approvals.policy.policy_hash_b64u = sha256B64u('another policy');
      },
    ],
    [
      'the plan hash of an approval receipt',
      'PLAN_BINDING_MISMATCH',
      (p) => {
        explicit(p)[0]!.plan_hash_b64u = sha256B64u('another plan');
      },
    ],
    [
      'the plan hash in metadata',
      'PLAN_BINDING_MISMATCH',
      (p) => {
        p.metadata.claw_approvals.plan_hash_b64u = sha256B64u('another plan');
      },
    ],
    [
      'an event timestamp',
      'EVENT_HASH_MISMATCH',
      (p) => {
        p.event_chain[3]!.timestamp = '2026-11-21T09:59:59.000Z';
      },
    ],
    [
      'an event removed from the chain',
      'EVENT_CHAIN_BROKEN',
      (p) => {
        p.event_chain.splice(3, 1);
      },
    ],
    [
      'the job named in metadata',
      'EVENT_RUN_ID_MISMATCH',
      (p) => {
        p.metadata.claw_approvals.job_id = 'job:999999';
      },
    ],
    [
      'the payload agent_did',
      'AGENT_DID_MISMATCH',
      (p, x) => {
        p.agent_did = x.gateway.did;
      },
    ],
    [
      'the agent_did of an approval receipt',
      'APPROVAL_RECEIPT_INVALID',
      (p, x) => {
        explicit(p)[0]!.agent_did = x.gateway.did;
      },
    ],
    [
      'the unverified receipt promoted into receipts',
      'RECEIPT_SIGNER_UNTRUSTED',
      (p, x) => {
        p.receipts!.push(x.bad as Envelope<Record<string, unknown>>);
      },
    ],
    [
      'a trusted gateway receipt bound to an event of no chain',
      'RECEIPT_BINDING_MISMATCH',
      (p, x) => {
        p.receipts!.push(
          gatewayReceipt(
            x.gateway,
            { run_id: p.metadata.claw_approvals.job_id, event_hash_b64u: sha256B64u('x') },
            'r2',
          ),
        );
      },
    ],
    [
      'a gateway receipt payload',
      'RECEIPT_HASH_MISMATCH',
      (p) => {
        p.receipts![0]!.payload.tokens_output = 21;
      },
    ],
    [
      'a bundle_version',
      'BUNDLE_PAYLOAD_INVALID',
      (p) => {
        p.bundle_version = '2';
      },
    ],
    [
      'an event payload entry replaced by null',
      'BUNDLE_PAYLOAD_INVALID',
      (p) => {
        (p.metadata.event_payloads as unknown[])[0] = null;
      },
    ],
    [
      'a CST audience of the wrong type',
      'BUNDLE_PAYLOAD_INVALID',
      (p) => {
        (stepMeta(p, 'post-summary').cst as unknown as { aud: number }).aud = 7;
      },
    ],
    [
      'a CST without its scope list',
      'TOKEN_BINDING_MISMATCH',
      (p) => {
        delete (stepMeta(p, 'post-summary').cst as Partial<NonNullable<StepMeta['cst']>>).scope;
      },
    ],
  ];

  describe('content tampered with and signed again with the bot key', () => {
    const shared: TestEngine[] = [];
    let sealed: Awaited<ReturnType<typeof completedJob>>;
    beforeAll(async () => {
      sealed = await completedJob(shared);
    });
    afterAll(async () => {
      await Promise.all(shared.splice(0).map((t) => t.close()));
    });

    it('re-signing an unchanged payload still verifies (the cases below change only content)', () => {
      const { env, ctx, trust } = sealed;
      expect(
        verifyBundle(
          resign(env, ctx.keyRing.active, () => {}),
          trust,
        ),
      ).toMatchObject({ ok: true });
    });

    it.each(tampers)('tampering with %s fails with %s', (_what, reason, tamper) => {
      const { env, ctx, trust, gateway, bad } = sealed;
      const forged = resign(env, ctx.keyRing.active, (p) => tamper(p, { gateway, bad }));
      expect(forged.signer_did).toBe(env.signer_did);
      expect(forged.payload_hash_b64u).not.toBe(env.payload_hash_b64u);
      expect(verifyBundle(forged, trust)).toMatchObject({ ok: false, reason });
    });
  });
});
