import { randomBytes } from 'node:crypto';
import { type Envelope, sealEnvelope } from '../crypto/envelope.js';
import { sha256B64u } from '../crypto/hash.js';
import type { Db } from '../db/database.js';
import type { JobEventRow, JobRow } from '../db/schema.js';
import type { EngineContext } from '../jobs/context.js';
import { jobSteps } from '../jobs/job-repository.js';
import { missionId } from '../tokens/cst-claims.js';
import { readChain } from './event-chain.js';
import { sortKeysDeep } from './sort-keys.js';

export type BundlePayload = Record<string, unknown> & { bundle_id: string; agent_did: string };
export type BundleEnvelope = Envelope<BundlePayload, 'proof_bundle'>;

/** The hash Claw Bureau's verifier uses for bundles and receipts: SHA-256 over `JSON.stringify(payload)`. */
export function bundlePayloadHash(payload: unknown): string {
  return sha256B64u(JSON.stringify(payload));
}

export function newBundleId(): string {
  return `pb_${randomBytes(16).toString('base64url')}`;
}

/**
 * The causal span each step's approvals are anchored to: the `span_id` declared by the step's
 * first verified gateway receipt (position order) that declares one. Claw Bureau's verifier
 * knows only spans declared by the bundle's `receipts`, so unverified receipts never anchor.
 */
function toolSpanOfSteps(
  receipts: readonly { step_id: string; position: number; verified: boolean; envelope: string }[],
): Map<string, string> {
  const spans = new Map<string, string>();
  const ordered = receipts.filter((r) => r.verified).sort((a, b) => a.position - b.position);
  for (const r of ordered) {
    if (spans.has(r.step_id)) continue;
    const binding = (JSON.parse(r.envelope) as { payload?: { binding?: { span_id?: unknown } } }).payload
      ?.binding;
    const span = binding?.span_id;
    if (typeof span === 'string' && span.trim().length > 0) spans.set(r.step_id, span);
  }
  return spans;
}

/**
 * A step's two-person snapshot as sealed (issue 10 section 3): null where no approval was
 * needed or none minted; for a gated mint, the record its `token_minted` event holds plus that
 * event's hash. Mints chained before snapshots were recorded seal null with a reason, so a
 * verifier can tell "not recorded" from "not needed".
 */
function sealedApproval(
  gate: string,
  mint: { event: JobEventRow; payload: Record<string, unknown> } | undefined,
): { approval: Record<string, unknown> | null; approval_unrecorded?: 'MINTED_BEFORE_SNAPSHOTS' } {
  if (gate !== 'gated' || !mint) return { approval: null };
  if (!('approval' in mint.payload))
    return { approval: null, approval_unrecorded: 'MINTED_BEFORE_SNAPSHOTS' };
  const record = mint.payload.approval as Record<string, unknown> | null;
  return {
    approval: record === null ? null : { ...record, mint_event_hash_b64u: mint.event.event_hash_b64u },
  };
}

/**
 * How a person decided, in the receipt schema's words: a click on the status post's button is a
 * `ui_click`. A typed chat phrase gets no approver_method: none of the schema's values describes it.
 */
function approverMethod(event: Record<string, unknown>): { approver_method?: 'ui_click' } {
  return event.method === 'button' ? { approver_method: 'ui_click' } : {};
}

interface StepPlan {
  id: string;
  tool: string;
  gate: 'auto' | 'gated';
  token_scope_hash_b64u: string;
  summary: string;
}

/**
 * Builds and signs the job's proof bundle (SPEC section 5) from what the database holds,
 * inside the transaction that ends the job. Our own parts have sorted keys; gateway receipt
 * envelopes keep the key order their signer hashed, so each still verifies on its own.
 */
export async function sealBundle(
  ctx: EngineContext,
  trx: Db,
  job: JobRow,
  at: Date,
): Promise<{ bundleId: string; envelope: BundleEnvelope; text: string }> {
  const bundleId = newBundleId();
  const did = ctx.keyRing.active.did;
  const runId = missionId(job.id);
  const events = await readChain(trx, job.id);
  const steps = await jobSteps(trx, job.id);
  const tokens = await trx.selectFrom('tokens').selectAll().where('job_id', '=', job.id).execute();
  const decisions = await trx
    .selectFrom('decisions')
    .select(['id', 'post_id', 'kind', 'outcome', 'withdrawn_at'])
    .where('job_id', '=', job.id)
    .orderBy('id')
    .execute();
  const receipts = await trx
    .selectFrom('gateway_receipts')
    .selectAll()
    .where('job_id', '=', job.id)
    .orderBy('step_id')
    .orderBy('position')
    .execute();

  // Each event's payload, parsed once.
  const payloads = new Map(events.map((e) => [e, JSON.parse(e.payload) as Record<string, unknown>]));
  const parse = (e: JobEventRow) => payloads.get(e)!;
  const created = events.find((e) => e.event_type === 'job_created');
  const planned = ((created ? parse(created).steps : []) ?? []) as StepPlan[];
  const plannedById = new Map(planned.map((s) => [s.id, s]));
  const eventOfDecision = new Map<number, JobEventRow>();
  for (const e of events) {
    const id = parse(e).decision_id;
    if (typeof id === 'number' && (e.event_type === 'approval_recorded' || e.event_type === 'step_denied')) {
      eventOfDecision.set(id, e);
    }
  }

  const approvalReceipts: Record<string, unknown>[] = [];
  const spanOfStep = toolSpanOfSteps(receipts);
  const base = (e: JobEventRow, step: string) => ({
    receipt_version: '1',
    agent_did: did,
    hash_algorithm: 'SHA-256',
    plan_hash_b64u: job.plan_hash_b64u,
    policy_hash_b64u: job.policy_hash_b64u,
    scope_hash_b64u: plannedById.get(step)?.token_scope_hash_b64u ?? '',
    scope_summary: (plannedById.get(step)?.summary ?? step).slice(0, 1024),
    binding: {
      run_id: runId,
      event_hash_b64u: e.event_hash_b64u,
      policy_hash: job.policy_hash_b64u,
      token_scope_hash_b64u: plannedById.get(step)?.token_scope_hash_b64u ?? '',
      ...(spanOfStep.has(step) ? { tool_span_id: spanOfStep.get(step) } : {}),
    },
  });
  for (const e of events) {
    const p = parse(e);
    if (e.event_type === 'token_minted') {
      const step = String(p.step);
      // Claw Bureau's receipt schema: the minted CST is named only on receipts whose approval minted it.
      const minted = {
        minted_capability_id: String(p.jti),
        minted_capability_ttl_seconds: Number(p.exp) - Number(p.iat),
      };
      if (p.gate === 'auto') {
        approvalReceipts.push({
          ...base(e, step),
          ...minted,
          receipt_id: `har_${e.event_id.slice(4)}`,
          approval_type: 'auto_approve',
          approver_subject: `policy:${job.policy_name}`,
          approver_method: 'policy_auto',
          timestamp: e.timestamp,
        });
        continue;
      }
      for (const c of (p.counted ?? []) as { user_id: string; decision_id: number | null }[]) {
        const approvalEvent = c.decision_id === null ? undefined : eventOfDecision.get(c.decision_id);
        if (!approvalEvent) continue;
        approvalReceipts.push({
          ...base(approvalEvent, step),
          ...minted,
          receipt_id: `har_${approvalEvent.event_id.slice(4)}`,
          approval_type: 'explicit_approve',
          approver_subject: c.user_id,
          ...approverMethod(parse(approvalEvent)),
          timestamp: approvalEvent.timestamp,
        });
      }
    } else if (e.event_type === 'step_denied') {
      approvalReceipts.push({
        ...base(e, String(p.step)),
        receipt_id: `har_${e.event_id.slice(4)}`,
        approval_type: 'explicit_deny',
        approver_subject: String(p.user_id),
        ...approverMethod(p),
        timestamp: e.timestamp,
      });
    }
  }

  const tokenOf = new Map(tokens.map((t) => [t.step_id, t]));
  const mintEvents = new Map(
    events
      .filter((e) => e.event_type === 'token_minted')
      .map((e) => [String(parse(e).step), { event: e, payload: parse(e) }] as const),
  );
  const ours = sortKeysDeep({
    claw_approvals: {
      job_id: runId,
      status: job.status,
      end_reason: job.end_reason,
      origin: job.origin,
      mattermost: {
        team_id: job.team_id,
        channel_id: job.channel_id,
        root_post_id: job.root_post_id,
        approval_post_ids: decisions
          .filter((d) => d.post_id !== null && d.outcome === 'accepted' && d.withdrawn_at === null)
          .map((d) => d.post_id as string),
      },
      submitted_by: job.submitted_by,
      requester_id: job.requester_id,
      executor: job.executor,
      // Named by hash, not embedded: clawverify refuses a payload.metadata over 16 KiB, and the
      // rule each gated step was held to is already in job_created and in its snapshot; the
      // signed policy itself is served at /v1/wpc/:hash (`bundle verify` fetches it for links).
      policy: { name: job.policy_name, policy_hash_b64u: job.policy_hash_b64u },
      plan_hash_b64u: job.plan_hash_b64u,
      steps: steps.map((s) => {
        const t = tokenOf.get(s.step_id);
        const mint = mintEvents.get(s.step_id);
        const m = mint?.payload;
        return {
          step: s.step_id,
          tool: s.tool,
          gate: s.gate,
          status: s.status,
          result_summary: s.result_summary,
          ...sealedApproval(s.gate, mint),
          cst: t
            ? {
                jti: t.jti,
                kid: t.kid,
                token_hash: t.token_hash,
                token_scope_hash_b64u: t.scope_hash_b64u,
                sub: t.sub,
                aud: m?.aud ?? null,
                scope: m?.scope ?? null,
                issued_at: t.issued_at.toISOString(),
                expires_at: t.expires_at.toISOString(),
                claimed: t.claimed_at !== null,
                redeemed: t.redeemed_at !== null,
                revoked: t.revoked_at !== null,
              }
            : null,
        };
      }),
      unverified_receipts: receipts
        .filter((r) => !r.verified)
        .map((r) => ({
          step: r.step_id,
          failure: r.failure,
          signer_did: r.signer_did,
          envelope_json: r.envelope,
        })),
    },
    event_payloads: events.map((e) => ({ event_id: e.event_id, payload: parse(e) })),
    harness: { id: 'claw-approvals', version: ctx.version, runtime: 'host' },
  });

  const payload: BundlePayload = {
    agent_did: did,
    bundle_id: bundleId,
    bundle_version: '1',
    event_chain: events.map((e) =>
      sortKeysDeep({
        event_hash_b64u: e.event_hash_b64u,
        event_id: e.event_id,
        event_type: e.event_type,
        payload_hash_b64u: e.payload_hash_b64u,
        prev_hash_b64u: e.prev_hash_b64u,
        run_id: runId,
        timestamp: e.timestamp,
      }),
    ),
    ...(approvalReceipts.length > 0 ? { human_approval_receipts: approvalReceipts.map(sortKeysDeep) } : {}),
    metadata: ours,
    ...(receipts.some((r) => r.verified)
      ? { receipts: receipts.filter((r) => r.verified).map((r) => JSON.parse(r.envelope) as unknown) }
      : {}),
  };
  const text = JSON.stringify(payload);
  // What a verifier re-parses must hash the same: refuse to seal anything that would not.
  if (JSON.stringify(JSON.parse(text)) !== text)
    throw new Error('bundle payload does not survive a JSON round trip');
  const envelope = sealEnvelope({
    type: 'proof_bundle',
    payload,
    payloadHashB64u: bundlePayloadHash(payload),
    key: ctx.keyRing.active,
    issuedAt: at,
  });
  const envelopeText = JSON.stringify(envelope);
  await trx
    .insertInto('bundles')
    .values({
      bundle_id: bundleId,
      job_id: job.id,
      envelope: envelopeText,
      payload_hash_b64u: envelope.payload_hash_b64u,
      created_at: at,
    })
    .execute();
  return { bundleId, envelope, text: envelopeText };
}
