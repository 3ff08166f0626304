import { z } from 'zod';
import { sha256B64u } from '../../crypto/hash.js';
import { canonicalJson } from '../../crypto/jcs.js';
import { tokenScopeHash } from '../../tokens/cst-claims.js';
import type { ChainedEvent } from '../event-chain.js';
import type { BundlePayload } from './bundle-schema.js';
import { fail, type Passed, quote } from './check.js';
import type { Chain } from './event-chain.js';
import { validate } from './schemas/validate.js';

/**
 * What a claw-approvals bundle adds to the Claw Bureau format (`metadata.claw_approvals`,
 * `metadata.event_payloads`), and the checks that tie it to the signed chain. Only the
 * fields these checks read are constrained; the rest is free (newer sealers add more).
 */
const cst = z.looseObject({
  jti: z.string(),
  token_hash: z.string(),
  token_scope_hash_b64u: z.string(),
  sub: z.string(),
  aud: z.string().nullable().optional(),
  scope: z.array(z.string()).nullable().optional(),
});
const ourMetadata = z.looseObject({
  claw_approvals: z.looseObject({
    job_id: z.string(),
    policy: z.looseObject({ name: z.string(), policy_hash_b64u: z.string() }),
    plan_hash_b64u: z.string(),
    steps: z.array(z.looseObject({ step: z.string(), tool: z.string(), cst: cst.nullable() })),
  }),
  event_payloads: z.array(
    z.looseObject({ event_id: z.string(), payload: z.record(z.string(), z.unknown()) }),
  ),
});
export type OurMetadata = z.infer<typeof ourMetadata>;
export type EventBody = Record<string, unknown>;

/** Our metadata when the bundle carries it (null for a bundle another harness sealed). */
export function checkOurMetadata(p: BundlePayload): { value: OurMetadata | null } & Passed {
  const md = p.metadata ?? {};
  if (md.claw_approvals === undefined && md.event_payloads === undefined)
    return {
      value: null,
      message:
        'no claw_approvals metadata: a bundle sealed by another harness; its receipts were checked against the chain only',
    };
  const shape = validate(ourMetadata, md, 'payload.metadata');
  if (!shape.ok) fail('BUNDLE_PAYLOAD_INVALID', null, shape.message);
  return {
    value: md as OurMetadata,
    message: 'metadata.claw_approvals and metadata.event_payloads are well-formed',
  };
}

/**
 * The job is the chain's run, and the envelope's `issued_at` (outside the signed payload) is
 * the time of the last event: a bundle is sealed at its last event, which fixes the date the
 * signer's trust is judged at.
 */
export function checkOurRun(ours: OurMetadata, chain: Chain, issuedAt: string): Passed {
  if (ours.claw_approvals.job_id !== chain.runId)
    fail('EVENT_RUN_ID_MISMATCH', null, 'metadata names another job than the event chain');
  if (chain.list.at(-1)?.timestamp !== issuedAt)
    fail('BUNDLE_ISSUED_AT_MISMATCH', null, 'issued_at is not the time of the last event');
  return { message: `job ${quote(ours.claw_approvals.job_id)} is the chain's run, sealed at its last event` };
}

/** Every event's payload is in the metadata and hashes to the event's `payload_hash_b64u`. */
export function checkEventPayloads(
  ours: OurMetadata,
  chain: Chain,
): { value: ReadonlyMap<string, EventBody> } & Passed {
  const byId = new Map(ours.event_payloads.map((x) => [x.event_id, x.payload]));
  const decoded = new Map<string, EventBody>();
  for (const e of chain.list) {
    const body = byId.get(e.event_id);
    if (body === undefined)
      fail('EVENT_PAYLOAD_MISMATCH', null, `event ${quote(e.event_id)} has no payload in metadata`);
    if (sha256B64u(canonicalJson(body)) !== e.payload_hash_b64u)
      fail(
        'EVENT_PAYLOAD_MISMATCH',
        null,
        `the payload of event ${quote(e.event_id)} does not match its hash`,
      );
    decoded.set(e.event_hash_b64u, body);
  }
  if (byId.size !== chain.list.length || ours.event_payloads.length !== chain.list.length)
    fail('EVENT_PAYLOAD_MISMATCH', null, 'metadata carries payloads of events not in the chain');
  return { value: decoded, message: `${decoded.size} event payloads match their hashes` };
}

/** The chain starts with `job_created`, which names the policy and plan the metadata names. */
export function checkPolicyAndPlan(
  ours: OurMetadata,
  chain: Chain,
  decoded: ReadonlyMap<string, EventBody>,
): Passed {
  const first = chain.list[0];
  const created = first ? decoded.get(first.event_hash_b64u) : undefined;
  if (!first || !created || first.event_type !== 'job_created')
    fail('EVENT_CHAIN_INVALID', null, 'the chain must start with job_created');
  const { policy, plan_hash_b64u: planHash } = ours.claw_approvals;
  if (created.policy_hash_b64u !== policy.policy_hash_b64u)
    fail('POLICY_BINDING_MISMATCH', null, 'job_created names another policy');
  if (created.plan_hash_b64u !== planHash || sha256B64u(canonicalJson(created.plan)) !== planHash)
    fail('PLAN_BINDING_MISMATCH', null, 'the plan does not hash to plan_hash_b64u');
  return { message: `job_created pins policy ${quote(policy.policy_hash_b64u)} and plan ${quote(planHash)}` };
}

export interface Mint {
  header: ChainedEvent;
  body: EventBody;
}

/** Each step's `token_minted` events, in chain order. */
function mintsByStep(chain: Chain, decoded: ReadonlyMap<string, EventBody>): Map<string, Mint[]> {
  const out = new Map<string, Mint[]>();
  for (const header of chain.list) {
    if (header.event_type !== 'token_minted') continue;
    const body = decoded.get(header.event_hash_b64u)!;
    const step = String(body.step);
    out.set(step, [...(out.get(step) ?? []), { header, body }]);
  }
  return out;
}

export interface Tokens {
  /** The recomputed token scope hash of each step that minted a CST. */
  scopeOfStep: ReadonlyMap<string, string>;
  mints: ReadonlyMap<string, Mint[]>;
}

/** Each step's CST in metadata recomputes to the scope hash its `token_minted` event recorded. */
export function checkTokens(
  ours: OurMetadata,
  chain: Chain,
  decoded: ReadonlyMap<string, EventBody>,
): { value: Tokens } & Passed {
  const { job_id: jobId, policy, plan_hash_b64u: planHash, steps } = ours.claw_approvals;
  const mints = mintsByStep(chain, decoded);
  const scopeOfStep = new Map<string, string>();
  for (const s of steps) {
    if (s.cst === null) continue;
    const c = s.cst;
    const m = mints.get(s.step)?.find((x) => x.body.jti === c.jti)?.body;
    const scope = c.scope;
    if (!m || !Array.isArray(scope) || typeof c.aud !== 'string')
      fail('TOKEN_BINDING_MISMATCH', null, `the CST binding of step ${quote(s.step)} does not recompute`);
    const recomputed = tokenScopeHash({
      sub: c.sub,
      aud: c.aud,
      scope,
      policy_hash_b64u: policy.policy_hash_b64u,
      mission_id: jobId,
    });
    const bound =
      recomputed === c.token_scope_hash_b64u &&
      m.token_scope_hash_b64u === recomputed &&
      m.token_hash === c.token_hash &&
      m.policy_hash_b64u === policy.policy_hash_b64u &&
      scope.includes(`plan:${planHash}`) &&
      scope.includes(`step:${s.step}`) &&
      scope.includes(`tool:${s.tool}`);
    if (!bound)
      fail('TOKEN_BINDING_MISMATCH', null, `the CST binding of step ${quote(s.step)} does not recompute`);
    scopeOfStep.set(s.step, recomputed);
  }
  return {
    value: { scopeOfStep, mints },
    message: `${scopeOfStep.size} CST bindings recompute from their token_minted events`,
  };
}
