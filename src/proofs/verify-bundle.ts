import { checkApprovalAnchoring, type StepIndex } from './verify/approval-anchoring.js';
import { checkApprovalEvents } from './verify/approval-events.js';
import { checkApprovalReceipts } from './verify/approval-receipts.js';
import { checkBundleLimits } from './verify/bundle-limits.js';
import { checkBundleSchema } from './verify/bundle-schema.js';
import { checkCausalGraph, checkSideEffectAnchoring } from './verify/causal.js';
import { checkCountedApprovals } from './verify/counted-approvals.js';
import {
  type BundleFailure,
  type BundleTrust,
  CheckFailure,
  CheckLog,
  type VerifyCheck,
} from './verify/check.js';
import {
  checkAgent,
  checkEnvelopeFormat,
  checkPayloadHash,
  checkSignature,
  checkSignerTrusted,
} from './verify/envelope.js';
import { checkEventChain } from './verify/event-chain.js';
import { checkFeatures } from './verify/features.js';
import { checkGatewayReceipts } from './verify/gateway-receipts.js';
import {
  checkEventPayloads,
  checkOurMetadata,
  checkOurRun,
  checkPolicyAndPlan,
  checkTokens,
} from './verify/our-bindings.js';
import { plannedSteps } from './verify/planned-steps.js';
import { checkPolicyRules } from './verify/policy-rules.js';
import { checkSideEffectReceipts } from './verify/side-effect-receipts.js';
import { checkTokenLifecycle } from './verify/token-lifecycle.js';
import { checkToolReceipts } from './verify/tool-receipts.js';
import { checkTwoPersonRule } from './verify/two-person-check.js';

export type { BundleFailure, BundleTrust, VerifyCheck };

export type BundleVerdict =
  | {
      ok: true;
      bundleId: string;
      signerDid: string;
      events: number;
      receipts: number;
      approvals: number;
      checks: VerifyCheck[];
    }
  | { ok: false; reason: BundleFailure; cbReason: string | null; message: string; checks: VerifyCheck[] };

/**
 * Re-checks a proof bundle offline, a superset of Claw Bureau's `clawverify verify
 * proof-bundle`: its checks in its order (envelope, schema, limits, hash, signature, event
 * chain, gateway, tool and side-effect receipts with co-signatures, human approval receipts,
 * causal graph in enforce mode), then ours: a trusted signer, every receipt bound to this run,
 * approval receipts against their own schema and, in bundles this project seals, against the
 * chain's events and every policy, plan and token binding, tokens within the job's lifecycle,
 * and each gated step's two-person rule recomputed from its sealed snapshot and from the
 * approvals its mint counted in the chain. Anything it cannot evaluate fails as
 * UNSUPPORTED_FEATURE. Fails closed with the first failing check; `checks` lists every check
 * made. `now` judges expiry (default: the current time). `policy`, the pinned policy's signed
 * WPC envelope when the caller has it, is checked to give each step the rule the chain pinned.
 */
export function verifyBundle(
  envelope: unknown,
  trust: BundleTrust,
  opts: { now?: Date; policy?: unknown } = {},
): BundleVerdict {
  const now = opts.now ?? new Date();
  const log = new CheckLog();
  try {
    const env = log.run('envelope.format', () => checkEnvelopeFormat(envelope, now));
    const p = log.run('bundle.schema', () => checkBundleSchema(env));
    log.note('bundle.limits', () => checkBundleLimits(p));
    log.note('bundle.agent', () => checkAgent(env, p.agent_did));
    log.note('envelope.hash', () => checkPayloadHash(env));
    log.note('envelope.signature', () => checkSignature(env));
    log.note('envelope.signer_trusted', () => checkSignerTrusted(env, trust));
    log.note('bundle.features', () => checkFeatures(p));
    const chain = log.run('event_chain', () => checkEventChain(p.event_chain));
    log.note('receipts.gateway', () => checkGatewayReceipts(p.receipts, chain, trust));
    log.note('receipts.tool', () => checkToolReceipts(p.tool_receipts, p.agent_did, chain, now));
    log.note('receipts.side_effect', () =>
      checkSideEffectReceipts(p.side_effect_receipts, p.agent_did, chain),
    );
    const approvals = log.run('receipts.approval', () =>
      checkApprovalReceipts(p.human_approval_receipts, p.agent_did, chain),
    );
    const spans = log.run('causal.graph', () => checkCausalGraph(p.receipts));
    log.note('causal.side_effects', () => checkSideEffectAnchoring(p.side_effect_receipts, spans));
    const ours = log.run('ours.metadata', () => checkOurMetadata(p));
    let index: StepIndex | null = null;
    if (ours) {
      log.note('ours.run', () => checkOurRun(ours, chain, env.issued_at));
      const decoded = log.run('ours.event_payloads', () => checkEventPayloads(ours, chain));
      log.note('ours.policy_plan', () => checkPolicyAndPlan(ours, chain, decoded));
      const tokens = log.run('ours.tokens', () => checkTokens(ours, chain, decoded));
      log.note('ours.token_lifecycle', () => checkTokenLifecycle(chain, decoded));
      log.note('ours.approvals', () => checkApprovalEvents(approvals, { ours, chain, decoded, tokens }));
      const planned = log.run('ours.steps', () => plannedSteps(ours, chain, decoded));
      log.note('ours.two_person', () =>
        checkTwoPersonRule({ ours, chain, decoded, tokens, planned, approvals }),
      );
      log.note('ours.counted_approvals', () => checkCountedApprovals({ chain, decoded, tokens, planned }));
      log.note('ours.policy_rules', () => checkPolicyRules(opts.policy, trust, ours, planned));
      index = { chain, decoded };
    }
    log.note('causal.approvals', () => checkApprovalAnchoring(approvals, p.receipts, spans, index));
    return {
      ok: true,
      bundleId: p.bundle_id,
      signerDid: env.signer_did,
      events: chain.list.length,
      receipts: p.receipts?.length ?? 0,
      approvals: approvals.length,
      checks: log.checks,
    };
  } catch (err) {
    if (!(err instanceof CheckFailure)) throw err;
    return {
      ok: false,
      reason: err.reason,
      cbReason: err.cbReason,
      message: err.message,
      checks: log.checks,
    };
  }
}
