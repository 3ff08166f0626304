import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import { sealEnvelope, verifyEnvelope } from '../../src/crypto/envelope.js';
import { jcsHashB64u } from '../../src/crypto/hash.js';
import { canonicalJson } from '../../src/crypto/jcs.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { pinPolicy } from '../../src/policy/pins.js';
import { getVerifiedApprovalPolicy, getVerifiedPolicy } from '../../src/policy/registry.js';
import type { Wpc } from '../../src/policy/types.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { receiptFor } from '../helpers/receipts.js';
import { validateCbEnvelope } from './clawbureau-wpc.js';

const NAME = 'mattermost-agent-prod';

/**
 * Registers a version as releases before WPC v1 did: the approval policy itself is the
 * signed payload, hashed as JCS(policy).
 */
async function registerLegacy(ctx: EngineContext, policy: Wpc): Promise<string> {
  const hash = jcsHashB64u(policy);
  const envelope = sealEnvelope({
    type: 'work_policy_contract',
    payload: policy,
    payloadHashB64u: hash,
    key: ctx.keyRing.active,
    issuedAt: ctx.clock(),
  });
  await ctx.db
    .insertInto('wpc_registry')
    .values({
      policy_hash_b64u: hash,
      policy_name: policy.policy_name,
      canonical_payload: canonicalJson(policy),
      signature_b64u: envelope.signature_b64u,
      signer_did: envelope.signer_did,
      issued_at: envelope.issued_at,
      source: `${NAME}.json`,
    })
    .execute();
  return hash;
}

async function pin(ctx: EngineContext, hash: string | null) {
  await pinPolicy(ctx.db, {
    name: NAME,
    hash,
    actor: 'ops',
    reason: hash ? 'a version from before the upgrade' : 'follow the file',
    key: ctx.keyRing.active,
    trusts: ctx.keyRing.trusts,
    clock: ctx.clock,
  });
  await ctx.policies.reload();
}

/** Approves and runs every step of a service-context job; returns the verdict on its bundle. */
async function runToCompletion(ctx: EngineContext, jobId: number) {
  for (const userId of [U.alice, U.chioma])
    await decideStep(ctx, { kind: 'approve', jobId, step: 'post-summary', userId });
  for (const step of ['search-kb', 'read-runbook', 'fetch-status', 'post-summary']) {
    const claimed = await claimToken(ctx, { jobId, step, agentId: OPS.executor });
    await redeemToken(ctx, claimed.token);
    await reportResult(ctx, {
      jobId,
      step,
      agentId: OPS.executor,
      status: 'succeeded',
      receipts: [receiptFor(claimed)],
    });
  }
  const job = await ctx.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
  const row = await ctx.db
    .selectFrom('bundles')
    .selectAll()
    .where('job_id', '=', jobId)
    .executeTakeFirstOrThrow();
  return {
    job,
    verdict: verifyBundle(JSON.parse(row.envelope), {
      trustsSigner: ctx.keyRing.trusts,
      gatewaySigners: ctx.gatewaySigners,
    }),
  };
}

describe(`versions registered before WPC v1 (${dialectName})`, () => {
  // One engine for the story: a legacy version governs the channel, a job pins it, the channel moves on.
  let e: TestEngine;
  let ctx: EngineContext;
  let current: { hash: string; policy: Wpc };
  let legacyHash: string;
  let oldJobId: number;
  beforeAll(async () => {
    e = await createTestEngine();
    ctx = e.ctx;
    current = ctx.policies.current()!.resolution.active.get(NAME)!;
    legacyHash = await registerLegacy(ctx, current.policy);
    await pin(ctx, legacyHash);
    oldJobId = (await opsJob(ctx)).jobId;
    await pin(ctx, null);
  });
  afterAll(async () => {
    await e?.close();
  });

  it('the job kept the legacy version while the channel moved on to the WPC v1 one', async () => {
    expect(legacyHash).not.toBe(current.hash);
    expect(ctx.policies.channelPolicy(OPS.channel)).toMatchObject({ open: true, hash: current.hash });
    const job = await ctx.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', oldJobId)
      .executeTakeFirstOrThrow();
    expect(job.policy_hash_b64u).toBe(legacyHash);
  });

  it('the legacy envelope still verifies, though it is not a Claw Bureau WPC v1 envelope', async () => {
    const envelope = await getVerifiedPolicy(ctx.db, legacyHash, ctx.keyRing.trusts);
    expect(envelope.payload).toEqual(current.policy);
    expect(
      verifyEnvelope(envelope, {
        type: 'work_policy_contract',
        hashPayload: jcsHashB64u,
        trustedSigners: new Set([ctx.keyRing.active.did]),
      }),
    ).toEqual({ ok: true });
    expect(validateCbEnvelope(envelope)).toBe(false);
    expect(await getVerifiedApprovalPolicy(ctx.db, legacyHash, ctx.keyRing.trusts)).toEqual(current.policy);
  });

  it('the job pinned to it runs to a verified bundle', async () => {
    const old = await runToCompletion(ctx, oldJobId);
    expect(old.job).toMatchObject({ policy_hash_b64u: legacyHash, status: 'completed' });
    expect(old.verdict).toMatchObject({ ok: true, receipts: 4 });
  });

  it('a new job pins the WPC v1 version and runs to a verified bundle too', async () => {
    const fresh = await runToCompletion(ctx, (await opsJob(ctx)).jobId);
    expect(fresh.job).toMatchObject({ policy_hash_b64u: current.hash, status: 'completed' });
    expect(fresh.verdict).toMatchObject({ ok: true, receipts: 4 });
  });

  it('a legacy row filed under another name is refused like any other: ERR_WPC_CORRUPTED', async () => {
    const policy = { ...structuredClone(current.policy), description: 'another legacy version' };
    const hash = jcsHashB64u(policy);
    const envelope = sealEnvelope({
      type: 'work_policy_contract',
      payload: policy,
      payloadHashB64u: hash,
      key: ctx.keyRing.active,
      issuedAt: ctx.clock(),
    });
    await ctx.db
      .insertInto('wpc_registry')
      .values({
        policy_hash_b64u: hash,
        policy_name: 'invoice-triage',
        canonical_payload: canonicalJson(policy),
        signature_b64u: envelope.signature_b64u,
        signer_did: envelope.signer_did,
        issued_at: envelope.issued_at,
        source: null,
      })
      .execute();
    await expect(getVerifiedPolicy(ctx.db, hash, ctx.keyRing.trusts)).rejects.toMatchObject({
      code: 'ERR_WPC_CORRUPTED',
    });
  });
});
