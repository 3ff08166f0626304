import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import { type Envelope, sealEnvelope } from '../../src/crypto/envelope.js';
import { jcsHashB64u } from '../../src/crypto/hash.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import { getVerifiedPolicy, type WpcEnvelope } from '../../src/policy/registry.js';
import { approvalPolicyOf, toWpcPayload } from '../../src/policy/wpc-payload.js';
import { type ChainedEvent, eventHash } from '../../src/proofs/event-chain.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import type { ApprovalSnapshot } from '../../src/proofs/two-person.js';
import { type BundleFailure, type BundleTrust, verifyBundle } from '../../src/proofs/verify-bundle.js';
import { CheckFailure } from '../../src/proofs/verify/check.js';
import { checkEventChain } from '../../src/proofs/verify/event-chain.js';
import { checkEventPayloads, checkOurMetadata, checkTokens } from '../../src/proofs/verify/our-bindings.js';
import { plannedSteps } from '../../src/proofs/verify/planned-steps.js';
import type { HumanApprovalReceipt } from '../../src/proofs/verify/schemas/human-approval-receipt.js';
import { checkTwoPersonRule } from '../../src/proofs/verify/two-person-check.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { receiptFor, testGateway } from '../helpers/receipts.js';
import { newKey } from '../helpers/state.js';

/**
 * Issue 10 section 3: `bundle verify` recomputes each gated step's two-person rule from the
 * snapshot sealed in the bundle and ties that snapshot to the chain. Each forgery below is a
 * bundle the engine sealed, edited, then re-chained and re-signed with the bot's own trusted
 * key (and its gateway receipts with the test gateway's), so that only these checks can catch it.
 */

type Body = Record<string, unknown>;
interface Counted {
  user_id: string;
  group: string;
  decision_id: number | null;
}
interface SealedStep {
  step: string;
  gate: string;
  approval?: ApprovalSnapshot | null;
  approval_unrecorded?: string;
}
interface Payload {
  event_chain: ChainedEvent[];
  human_approval_receipts: { approval_type: string; approver_subject: string }[];
  receipts?: Envelope<Body>[];
  metadata: {
    claw_approvals: Body & { requester_id: string; steps: SealedStep[] };
    event_payloads: { event_id: string; payload: Body }[];
  };
}
type Bundle = Envelope<Payload>;

const STEPS = ['search-kb', 'read-runbook', 'fetch-status', 'post-summary'];
const GATED = 'post-summary';

/** The ops job approved by alice (ops-oncall) and chioma (sec-reviewers), every step run. */
async function sealedJob(ctx: EngineContext): Promise<Bundle> {
  const job = await opsJob(ctx);
  for (const userId of [U.alice, U.chioma])
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: GATED, userId });
  for (const step of STEPS) {
    const c = await claimToken(ctx, { jobId: job.jobId, step, agentId: OPS.executor });
    await redeemToken(ctx, c.token);
    await reportResult(ctx, {
      jobId: job.jobId,
      step,
      agentId: OPS.executor,
      status: 'succeeded',
      receipts: [receiptFor(c)],
    });
  }
  const row = await ctx.db
    .selectFrom('bundles')
    .innerJoin('jobs', 'jobs.bundle_id', 'bundles.bundle_id')
    .select('bundles.envelope')
    .where('jobs.id', '=', job.jobId)
    .executeTakeFirstOrThrow();
  return JSON.parse(row.envelope) as Bundle;
}

/** `value` with every string that is a key of `renamed` replaced (event hashes). */
function rename<T>(value: T, renamed: ReadonlyMap<string, string>): T {
  if (typeof value === 'string') return (renamed.get(value) ?? value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => rename(v, renamed)) as T;
  if (typeof value === 'object' && value !== null)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rename(v, renamed)])) as T;
  return value;
}

/**
 * The bundle after `edit`, made whole again: every event's payload hash, event hash and link
 * recomputed in chain order (an edit may name events by their old hashes: each is renamed),
 * the gateway receipts bound to renamed events signed again by the test gateway, and the
 * bundle signed again by the bot's key.
 */
function reseal(ctx: EngineContext, env: Bundle, edit: (p: Payload) => void): Bundle {
  const p = structuredClone(env.payload);
  edit(p);
  const renamed = new Map<string, string>();
  const entries = new Map(p.metadata.event_payloads.map((x) => [x.event_id, x]));
  let prev: string | null = null;
  for (const e of p.event_chain) {
    const entry = entries.get(e.event_id)!;
    entry.payload = rename(entry.payload, renamed);
    e.payload_hash_b64u = jcsHashB64u(entry.payload);
    e.prev_hash_b64u = prev;
    const hash = eventHash(e);
    renamed.set(e.event_hash_b64u, hash);
    e.event_hash_b64u = hash;
    prev = hash;
  }
  p.human_approval_receipts = rename(p.human_approval_receipts, renamed);
  p.metadata.claw_approvals = rename(p.metadata.claw_approvals, renamed);
  p.receipts = p.receipts?.map((r) => {
    const payload = rename(r.payload, renamed);
    return sealEnvelope({
      type: 'gateway_receipt',
      payload,
      payloadHashB64u: bundlePayloadHash(payload),
      key: testGateway,
      issuedAt: new Date(r.issued_at),
    });
  });
  return sealEnvelope({
    type: 'proof_bundle',
    payload: p,
    payloadHashB64u: bundlePayloadHash(p),
    key: ctx.keyRing.active,
    issuedAt: new Date(env.issued_at),
  });
}

// Views into a payload being edited.
const payloadOf = (p: Payload, e: { event_id: string }) =>
  p.metadata.event_payloads.find((x) => x.event_id === e.event_id)!.payload;
function event(p: Payload, type: string, where: (b: Body) => boolean = () => true) {
  const found = p.event_chain.filter((e) => e.event_type === type && where(payloadOf(p, e)));
  expect(found).toHaveLength(1);
  return { header: found[0]!, body: payloadOf(p, found[0]!) };
}
const created = (p: Payload) => event(p, 'job_created').body;
const mint = (p: Payload, step = GATED) => event(p, 'token_minted', (b) => b.step === step);
const approved = (p: Payload, user: string) => event(p, 'approval_recorded', (b) => b.user_id === user);
const step = (p: Payload, id = GATED) => p.metadata.claw_approvals.steps.find((s) => s.step === id)!;
const counted = (p: Payload) => mint(p).body.counted as Counted[];
/** The same edit to the sealed snapshot and to the record its token_minted event chained. */
function bothRecords(p: Payload, edit: (record: ApprovalSnapshot) => void) {
  edit(step(p).approval!);
  edit(mint(p).body.approval as ApprovalSnapshot);
}
const approverOf = (record: ApprovalSnapshot, user: string) =>
  record.approvers.find((a) => a.user_id === user)!;

describe(`bundle verify recomputes the two-person rule from the sealed snapshot (${dialectName})`, () => {
  let e: TestEngine;
  let trust: BundleTrust;
  let sealed: Bundle;
  beforeAll(async () => {
    e = await createTestEngine();
    trust = { trustsSigner: e.ctx.keyRing.trusts, gatewaySigners: e.ctx.gatewaySigners };
    sealed = await sealedJob(e.ctx);
  }, 180_000);
  afterAll(async () => e?.close());

  const checkOf = (env: unknown, id: string, opts = {}) =>
    verifyBundle(env, trust, opts).checks.find((c) => c.id === id);

  it('passes the sealed bundle, saying which steps it recomputed, and a re-seal that edits nothing', () => {
    const verdict = verifyBundle(sealed, trust);
    expect(verdict).toMatchObject({ ok: true });
    const ids = verdict.checks.map((c) => c.id);
    expect(ids.indexOf('ours.two_person')).toBe(ids.indexOf('ours.approvals') + 2);
    expect(checkOf(sealed, 'ours.two_person')).toEqual({
      id: 'ours.two_person',
      ok: true,
      message: 'two-person rule recomputed from the sealed snapshot for "post-summary"',
    });
    const again = reseal(e.ctx, sealed, () => {});
    expect(again.payload.event_chain).toEqual(sealed.payload.event_chain);
    expect(verifyBundle(again, trust)).toMatchObject({ ok: true });
  });

  const forgeries: [string, BundleFailure, string, (p: Payload) => void][] = [
    [
      'quorum not met: chioma removed from the snapshot, the mint and the receipts',
      'APPROVAL_QUORUM_NOT_MET',
      '1 of 2 required approvals are recorded',
      (p) => {
        bothRecords(p, (r) => void r.approvers.splice(1, 1));
        counted(p).splice(1, 1);
        const receipts = p.human_approval_receipts;
        receipts.splice(
          receipts.findIndex((r) => r.approver_subject === U.chioma),
          1,
        );
      },
    ],
    [
      'approval by the requester: alice made the requester in job_created, the metadata and both records',
      'APPROVAL_BY_REQUESTER',
      `the requester ${U.alice} is counted as an approver`,
      (p) => {
        created(p).requester_id = U.alice;
        p.metadata.claw_approvals.requester_id = U.alice;
        bothRecords(p, (r) => void (r.requester_id = U.alice));
      },
    ],
    [
      'groups not distinct: chioma found and counted in ops-oncall only, as alice, everywhere',
      'APPROVAL_GROUPS_NOT_DISTINCT',
      'cannot fill 2 distinct groups',
      (p) => {
        bothRecords(p, (r) => {
          const a = approverOf(r, U.chioma);
          a.counted_for = 'ops-oncall';
          a.found_in = [{ group: 'ops-oncall', via: 'user_id', ref: U.chioma }];
        });
        counted(p).find((c) => c.user_id === U.chioma)!.group = 'ops-oncall';
        approved(p, U.chioma).body.groups = ['ops-oncall'];
      },
    ],
    [
      'the snapshot stripped (said unrecorded) while the mint event still holds it',
      'APPROVAL_SNAPSHOT_INVALID',
      'chained an approval snapshot that the bundle does not carry',
      (p) => Object.assign(step(p), { approval: null, approval_unrecorded: 'MINTED_BEFORE_SNAPSHOTS' }),
    ],
    [
      'the snapshot key removed while the mint event still holds it',
      'APPROVAL_SNAPSHOT_INVALID',
      'chained an approval snapshot that the bundle does not carry',
      (p) => void delete step(p).approval,
    ],
    [
      'a gated mint sealed with approval null and no reason',
      'APPROVAL_SNAPSHOT_INVALID',
      'chained an approval snapshot',
      (p) => void (step(p).approval = null),
    ],
    [
      'a snapshot that differs from the record its mint event chained',
      'APPROVAL_SNAPSHOT_INVALID',
      'is not the record its token_minted event chained',
      (p) => void (approverOf(step(p).approval!, U.alice).username = 'mallory'),
    ],
    [
      'a rule other than job_created pinned, in both records',
      'APPROVAL_SNAPSHOT_INVALID',
      'the rule is not the one job_created pinned',
      (p) => bothRecords(p, (r) => void (r.rule.required_approvals = 1)),
    ],
    [
      "an approver whose approval event is another step's mint",
      'APPROVAL_SNAPSHOT_INVALID',
      `approver "${U.chioma}" has no approval_recorded event`,
      (p) => {
        const other = mint(p, 'search-kb').header.event_hash_b64u;
        bothRecords(p, (r) => void (approverOf(r, U.chioma).approval_event_hash_b64u = other));
      },
    ],
    [
      "an approver whose approval event is another person's",
      'APPROVAL_SNAPSHOT_INVALID',
      `approver "${U.chioma}" has no approval_recorded event`,
      (p) => {
        const alices = approved(p, U.alice).header.event_hash_b64u;
        bothRecords(p, (r) => void (approverOf(r, U.chioma).approval_event_hash_b64u = alices));
      },
    ],
    [
      "a requester other than the job's, in both records",
      'APPROVAL_SNAPSHOT_INVALID',
      "the requester is not the job's",
      (p) => bothRecords(p, (r) => void (r.requester_id = U.farid)),
    ],
    [
      'a snapshot evaluated at another time than its mint, in both records',
      'APPROVAL_SNAPSHOT_INVALID',
      'evaluated_at is not the time of its token_minted event',
      (p) => bothRecords(p, (r) => void (r.evaluated_at = '2026-11-21T09:00:00.000Z')),
    ],
    [
      'a snapshot sealed for a mint whose event chained none (as before snapshots existed)',
      'APPROVAL_SNAPSHOT_INVALID',
      'is not the record its token_minted event chained',
      (p) => void delete mint(p).body.approval,
    ],
    [
      'a gated mint of before snapshots sealed with approval null and no reason',
      'APPROVAL_SNAPSHOT_INVALID',
      'a gated step minted without an approval snapshot',
      (p) => {
        delete mint(p).body.approval;
        step(p).approval = null;
      },
    ],
    [
      'a mint that counted one approver more than the snapshot',
      'APPROVAL_SNAPSHOT_INVALID',
      'its token_minted event counted more approvers than the snapshot',
      (p) => void counted(p).push({ user_id: U.dmitri, group: 'sec-reviewers', decision_id: null }),
    ],
    [
      "an auto step's mint event recording an approval snapshot",
      'APPROVAL_SNAPSHOT_INVALID',
      'its token_minted event records an approval snapshot for an auto step',
      (p) => void (mint(p, 'search-kb').body.approval = structuredClone(mint(p).body.approval)),
    ],
    [
      'a snapshot naming another mint event',
      'APPROVAL_SNAPSHOT_INVALID',
      'mint_event_hash_b64u is not its token_minted event',
      (p) => void (step(p).approval!.mint_event_hash_b64u = mint(p, 'search-kb').header.event_hash_b64u),
    ],
    [
      'a mint that counted an approver for another group than the snapshot says',
      'APPROVAL_SNAPSHOT_INVALID',
      `did not count approver "${U.chioma}" for "sec-reviewers"`,
      (p) => void (counted(p).find((c) => c.user_id === U.chioma)!.group = 'ops-oncall'),
    ],
    [
      'an auto step carrying a snapshot',
      'APPROVAL_SNAPSHOT_INVALID',
      'needed no approval but carries an approval snapshot',
      (p) => void (step(p, 'search-kb').approval = structuredClone(step(p).approval!)),
    ],
    [
      'an auto step said to have gone unrecorded',
      'APPROVAL_SNAPSHOT_INVALID',
      'needed no approval but says its snapshot went unrecorded',
      (p) => void (step(p, 'search-kb').approval_unrecorded = 'MINTED_BEFORE_SNAPSHOTS'),
    ],
  ];
  it.each(forgeries)('rejects %s with %s', (_what, reason, words, forge) => {
    const verdict = verifyBundle(reseal(e.ctx, sealed, forge), trust);
    expect(verdict).toMatchObject({ ok: false, reason, cbReason: null });
    expect(verdict.ok || verdict.message).toContain(words);
    // Everything else still verifies: the two-person check is what catches it.
    const last = verdict.checks.at(-1)!;
    expect(last).toMatchObject({ id: 'ours.two_person', ok: false, reason });
    expect(verdict.checks.slice(0, -1).every((c) => c.ok)).toBe(true);
  });

  it('names the step whose metadata gate differs from the plan (PLAN_BINDING_MISMATCH)', () => {
    const verdict = verifyBundle(
      reseal(e.ctx, sealed, (p) => void (step(p).gate = 'auto')),
      trust,
    );
    expect(verdict).toMatchObject({ ok: false, reason: 'PLAN_BINDING_MISMATCH' });
    expect(verdict.checks.at(-1)).toMatchObject({ id: 'ours.steps', ok: false });
  });

  it('says, without failing, a step minted before snapshots existed: its mint event has no approval key', () => {
    const legacy = reseal(e.ctx, sealed, (p) => {
      delete mint(p).body.approval;
      Object.assign(step(p), { approval: null, approval_unrecorded: 'MINTED_BEFORE_SNAPSHOTS' });
    });
    expect(verifyBundle(legacy, trust)).toMatchObject({ ok: true });
    expect(checkOf(legacy, 'ours.two_person')).toEqual({
      id: 'ours.two_person',
      ok: true,
      message: 'not recomputable (sealed before snapshots): "post-summary"',
    });
  });

  it('on its own, fails a step whose approval receipts name other people than its snapshot (ours.approvals catches it first in verifyBundle)', () => {
    const p = structuredClone(sealed.payload) as unknown as Parameters<typeof checkOurMetadata>[0];
    const chain = checkEventChain(p.event_chain).value;
    const ours = checkOurMetadata(p).value!;
    const decoded = checkEventPayloads(ours, chain).value;
    const tokens = checkTokens(ours, chain, decoded).value;
    const planned = plannedSteps(ours, chain, decoded).value;
    const receipts = p.human_approval_receipts as HumanApprovalReceipt[];
    const ctx = { ours, chain, decoded, tokens, planned, approvals: receipts };
    expect(checkTwoPersonRule(ctx).message).toContain('"post-summary"');
    const chiomas = receipts.find((r) => r.approver_subject === U.chioma)!;
    for (const approvals of [
      receipts.filter((r) => r !== chiomas),
      [...receipts, chiomas],
      receipts.map((r) => (r === chiomas ? { ...r, approver_subject: U.dmitri } : r)),
    ]) {
      const run = () => checkTwoPersonRule({ ...ctx, approvals });
      expect(run).toThrow(CheckFailure);
      expect(run).toThrow(
        'step "post-summary": its approval receipts name other approvers than the snapshot',
      );
    }
  });

  describe('against the pinned policy the caller supplies', () => {
    let policy: WpcEnvelope;
    beforeAll(async () => {
      const hash = (sealed.payload.metadata.claw_approvals.policy as { policy_hash_b64u: string })
        .policy_hash_b64u;
      policy = await getVerifiedPolicy(e.ctx.db, hash, e.ctx.keyRing.trusts);
    });

    /** A policy version signed by `key`, with `edit` applied to its approval policy. */
    function version(key = e.ctx.keyRing.active, edit: (rule: Body) => void = () => {}): WpcEnvelope {
      const approval = structuredClone(approvalPolicyOf(policy.payload));
      edit(approval.execution.approval_rule as unknown as Body);
      const payload = toWpcPayload(approval);
      return sealEnvelope({
        type: 'work_policy_contract',
        payload,
        payloadHashB64u: jcsHashB64u(payload),
        key,
        issuedAt: new Date(policy.issued_at),
      });
    }

    it('says the check was not made when no policy is supplied', () => {
      expect(checkOf(sealed, 'ours.policy_rules')).toMatchObject({
        ok: true,
        message: expect.stringMatching(/^not made: the signed policy .* was not supplied/),
      });
    });

    it("passes with the bundle's policy: each planned step's gate and rule are the policy's", () => {
      expect(version().payload_hash_b64u).toBe(policy.payload_hash_b64u);
      const verdict = verifyBundle(sealed, trust, { policy });
      expect(verdict).toMatchObject({ ok: true });
      expect(verdict.checks.at(-2)).toMatchObject({
        id: 'ours.policy_rules',
        ok: true,
        message: expect.stringContaining('gives every planned step the gate and two-person rule'),
      });
    });

    const wrong: [string, () => unknown, string][] = [
      [
        'another version of the policy',
        () => version(undefined, (r) => void (r.required_approvals = 3)),
        'is version',
      ],
      ['the same policy signed by an untrusted key', () => version(newKey()), 'not trusted'],
      [
        'an envelope whose signature was altered',
        () => ({ ...policy, signature_b64u: version(newKey()).signature_b64u }),
        'does not verify',
      ],
      [
        'an envelope whose payload was altered',
        () => ({ ...policy, payload: version(undefined, (r) => void (r.required_approvals = 1)).payload }),
        'does not verify',
      ],
      ['something that is not an envelope', () => ({ policy: 'mattermost-agent-prod' }), 'does not verify'],
    ];
    it.each(wrong)('fails with POLICY_BINDING_MISMATCH given %s', (_what, supplied, words) => {
      const verdict = verifyBundle(sealed, trust, { policy: supplied() });
      expect(verdict).toMatchObject({ ok: false, reason: 'POLICY_BINDING_MISMATCH', cbReason: null });
      expect(verdict.ok || verdict.message).toContain(words);
      expect(verdict.checks.at(-1)).toMatchObject({ id: 'ours.policy_rules', ok: false });
    });

    it('catches a rule weakened consistently in job_created and both records, which only the policy can', () => {
      const weakened = reseal(e.ctx, sealed, (p) => {
        const planned = (created(p).steps as { id: string; rule?: Body }[]).find((s) => s.id === GATED)!;
        planned.rule!.required_approvals = 1;
        bothRecords(p, (r) => void (r.rule.required_approvals = 1));
      });
      expect(verifyBundle(weakened, trust)).toMatchObject({ ok: true });
      const verdict = verifyBundle(weakened, trust, { policy });
      expect(verdict).toMatchObject({ ok: false, reason: 'APPROVAL_RULE_MISMATCH', cbReason: null });
      expect(verdict.ok || verdict.message).toContain(
        'step "post-summary": job_created pinned another approval rule than the signed policy',
      );
    });
  });
});
