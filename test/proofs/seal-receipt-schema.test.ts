import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { clawBureauPath } from '../helpers/clawbureau.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, editJson, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';

/** Claw Bureau's own schema, read from the shared reference directory (draft-07, formats on). */
const ajv = new Ajv({ allErrors: true, strict: false });
addFormats.default(ajv);
const validateReceipt = ajv.compile(
  JSON.parse(
    readFileSync(clawBureauPath('upstream/packages/schema/poh/human_approval_receipt.v1.json'), 'utf8'),
  ) as object,
);

type Receipt = Record<string, unknown> & { approval_type: string };

const opened: TestEngine[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.close()));
});

async function engine() {
  const e = await createTestEngine({
    edit: (dir) =>
      editJson(dir, 'mattermost-agent-prod.json', (p) => {
        (p.attestation as Record<string, unknown>).require_gateway_receipts = false;
      }),
  });
  opened.push(e);
  return e.ctx;
}

async function sealedReceipts(ctx: EngineContext, jobId: number): Promise<Receipt[]> {
  const job = await ctx.db
    .selectFrom('jobs')
    .select('bundle_id')
    .where('id', '=', jobId)
    .executeTakeFirstOrThrow();
  const row = await ctx.db
    .selectFrom('bundles')
    .select('envelope')
    .where('bundle_id', '=', job.bundle_id!)
    .executeTakeFirstOrThrow();
  return (JSON.parse(row.envelope) as { payload: { human_approval_receipts: Receipt[] } }).payload
    .human_approval_receipts;
}

/** Each receipt against the schema, with ajv's errors in the failure message. */
function expectSchemaValid(receipts: Receipt[]) {
  for (const r of receipts) {
    const ok = validateReceipt(r);
    expect(ok, `${r.approval_type}: ${ajv.errorsText(validateReceipt.errors)}`).toBe(true);
  }
}

describe(`approval receipts validate against Claw Bureau's human_approval_receipt.v1 (${dialectName})`, () => {
  it('the schema rejects what we used to emit (the test can fail)', () => {
    const valid = {
      receipt_version: '1',
      receipt_id: 'har_x',
      approval_type: 'explicit_approve',
      approver_subject: U.alice,
      agent_did: 'did:key:z6Mk',
      scope_hash_b64u: 'abc',
      hash_algorithm: 'SHA-256',
      timestamp: '2026-11-21T10:00:00.000Z',
    };
    expect(validateReceipt(valid)).toBe(true);
    expect(validateReceipt({ ...valid, capability_minted: true })).toBe(false);
    expect(validateReceipt({ ...valid, approver_method: 'chat_phrase' })).toBe(false);
    expect(validateReceipt({ ...valid, timestamp: 'yesterday' })).toBe(false);
  });

  it('auto and explicit approvals of a completed job: minted capability named, method only on auto', async () => {
    const ctx = await engine();
    const job = await opsJob(ctx);
    for (const userId of [U.alice, U.chioma]) {
      await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId });
    }
    for (const step of ['search-kb', 'read-runbook', 'fetch-status', 'post-summary']) {
      const c = await claimToken(ctx, { jobId: job.jobId, step, agentId: OPS.executor });
      await redeemToken(ctx, c.token);
      await reportResult(ctx, {
        jobId: job.jobId,
        step,
        agentId: OPS.executor,
        status: 'succeeded',
        summary: `${step} done`,
        receipts: [],
      });
    }
    const receipts = await sealedReceipts(ctx, job.jobId);
    expect(receipts.map((r) => r.approval_type)).toEqual([
      'auto_approve',
      'auto_approve',
      'auto_approve',
      'explicit_approve',
      'explicit_approve',
    ]);
    expectSchemaValid(receipts);
    const tokens = await ctx.db.selectFrom('tokens').selectAll().where('job_id', '=', job.jobId).execute();
    for (const r of receipts) {
      expect(r).not.toHaveProperty('capability_minted');
      expect(tokens.map((t) => t.jti)).toContain(r.minted_capability_id);
      expect(r.minted_capability_ttl_seconds).toBeGreaterThan(0);
      if (r.approval_type === 'auto_approve') expect(r.approver_method).toBe('policy_auto');
      else expect(r).not.toHaveProperty('approver_method');
    }
  });

  it('a denial: no minted capability, no method', async () => {
    const ctx = await engine();
    const job = await opsJob(ctx);
    const d = await decideStep(ctx, {
      kind: 'deny',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.alice,
      reason: 'not now',
    });
    expect(d.ended?.status).toBe('denied');
    const receipts = await sealedReceipts(ctx, job.jobId);
    const deny = receipts.filter((r) => r.approval_type === 'explicit_deny');
    expect(deny).toHaveLength(1);
    expectSchemaValid(receipts);
    for (const key of [
      'minted_capability_id',
      'minted_capability_ttl_seconds',
      'approver_method',
      'capability_minted',
    ])
      expect(deny[0]).not.toHaveProperty(key);
  });
});
