/**
 * The agent API's requests and answers, field for field as the server's route schemas
 * (`src/http/routes/jobs.ts`, `tokens.ts`) declare them: snake_case, as on the wire.
 */

export type JobStatus = 'open' | 'completed' | 'failed' | 'denied' | 'expired' | 'revoked' | 'cancelled';
export type StepStatus =
  'awaiting_approval' | 'approved' | 'claimed' | 'succeeded' | 'failed' | 'denied' | 'revoked' | 'cancelled';

/** A runbook param or step arg: the API accepts only scalars. */
export type Scalar = string | number | boolean;

/** A job id: `12`, `"12"` or `"job:12"`, or a job view. */
export type JobRef = number | string | { readonly job_id: number };

export interface PlanStep {
  id: string;
  tool: string;
  args?: Record<string, Scalar>;
  summary: string;
}

/** `POST /v1/jobs`: a runbook of the channel's policy, or explicit steps. */
export interface SubmitJobRequest {
  /** Mattermost channel id (26 characters); its pinned policy decides. */
  channel_id: string;
  team_id?: string;
  /** Mattermost user id of the person the work is for; they confirm with `CONFIRM job:<n>`. */
  requester_id: string;
  runbook?: { name: string; params?: Record<string, Scalar> };
  steps?: PlanStep[];
}

export interface StepTokenView {
  jti: string;
  expires_at: string;
  /** Minted, not yet claimed or revoked, and the job is open. */
  claimable: boolean;
}

/** How a decision reached the server: a phrase in the thread, a button, the slash command, the API. */
export type DecisionVia = 'chat' | 'button' | 'command' | 'api';

/**
 * What settled a step: `approved` (people made the quorum), `auto` (its policy lets it run
 * without approval), `denied`, or, for a step its job's ending stopped, how the job ended:
 * `revoked`, `expired`, `cancelled` (`denied` when another step's denial ended it).
 */
export type StepOutcome = 'approved' | 'auto' | 'denied' | 'revoked' | 'cancelled' | 'expired';

/** Someone the job's record names as having decided a step. */
export interface Decider {
  /**
   * A Mattermost user id; `admin:<name>` for an operator; for a token revoked through the API,
   * the revoking agent's id or `admin:<name>`.
   */
  user_id: string;
  /** As Mattermost gave it when the quorum was checked (approvers only); null when nothing recorded it. */
  username: string | null;
  /** The group an approval was counted for; the groups a denier or revoker was found in. */
  groups: string[];
  via: DecisionVia;
  /** When they decided (ISO 8601). */
  at: string;
}

export interface StepDecision {
  outcome: StepOutcome;
  /**
   * The approvals that made the quorum (oldest first; a withdrawn approval never counts), the
   * denier, or who revoked or cancelled the job; empty for an auto step, an expiry, or a job
   * closed by its agent.
   */
  by: Decider[];
  /** The denier's reason; for a step stopped by its job's ending, the job's end reason; null for an approval. */
  reason: string | null;
  /** When the step was settled (ISO 8601). */
  at: string;
}

export interface JobStepView {
  id: string;
  tool: string;
  args: Record<string, Scalar>;
  summary: string;
  gate: 'auto' | 'gated';
  status: StepStatus;
  required_approvals: number;
  approver_groups: string[];
  distinct_groups: boolean;
  /** Approvals that count now; null when group membership cannot be checked at the moment. */
  approvals: number | null;
  simulation_step: string | null;
  token: StepTokenView | null;
  /** How the step was settled and by whom; null while it awaits approval in an open job. */
  decision: StepDecision | null;
}

/** What the agent sees of its job (never a token). */
export interface JobView {
  /** `job:<n>` */
  id: string;
  job_id: number;
  /** Grows with every event of the job: pass it as `afterVersion` to long-poll for the next. */
  version: number;
  status: JobStatus;
  origin: 'mattermost' | 'api' | 'command';
  channel_id: string | null;
  root_post_id: string | null;
  requester_id: string;
  executor: string;
  runbook: string | null;
  policy: { name: string; policy_hash_b64u: string };
  plan_hash_b64u: string;
  created_at: string;
  expires_at: string;
  ended_at: string | null;
  end_reason: string | null;
  bundle_id: string | null;
  steps: JobStepView[];
}

/** `POST /v1/jobs/:id/steps/:step/token`: the step's CST, handed out once. */
export interface ClaimedToken {
  /** The compact CST: a credential. Never log it. */
  token: string;
  jti: string;
  expires_at: string;
  /** `job:<n>`: gateways bind their receipts to it. */
  run_id: string;
  /** Hash of the `token_claimed` event: gateways bind their receipts to it. */
  event_hash_b64u: string;
}

/** The CST's claims (the Claw Bureau set). */
export interface TokenClaims {
  token_version: string;
  sub: string;
  aud: string;
  scope: string[];
  iat: number;
  exp: number;
  jti: string;
  nonce: string;
  mission_id: string;
  policy_hash_b64u: string;
  token_scope_hash_b64u: string;
}

export type Introspection =
  | { active: true; claims: TokenClaims; token_hash: string; job_id: number; step: string }
  /** `code`: why it is inactive (`ERR_TOKEN_INVALID`, `_EXPIRED`, `_REVOKED`, `_REPLAYED`, …). */
  | { active: false; code: string; message: string };

export interface Redemption {
  redeemed: true;
  claims: TokenClaims;
  token_hash: string;
  job_id: number;
  step: string;
}

/** Exactly one of `jti` and `token_hash`. */
export type RevokeTarget = { jti: string; token_hash?: never } | { token_hash: string; jti?: never };

export interface Revocation {
  jti: string;
  job_id: number;
  already_revoked: boolean;
  job_ended: boolean;
}

export interface StepResult {
  status: 'succeeded' | 'failed';
  summary?: string;
  /** Gateway receipt envelopes (signed by a gateway the server trusts, bound to the claim). */
  receipts?: object[];
}

export interface ReportedResult {
  step: string;
  status: StepStatus;
  receipts: { receipt_id: string | null; verified: boolean; failure: string | null }[];
  /** `open` while other steps remain. */
  job_status: JobStatus;
  bundle_id: string | null;
}

export interface ClosedJob {
  job_status: JobStatus;
  bundle_id: string;
  reason: string;
}

/** Where a step's approval stands. */
export type DecisionOutcome = 'approved' | 'denied' | 'expired' | 'revoked' | 'cancelled' | 'pending';

export interface Decision {
  /**
   * `approved`: a CST was minted (the step may since have been claimed or run);
   * `denied`, `expired`, `revoked`, `cancelled`: it never will be; `pending`: still waiting
   * when the time ran out.
   */
  outcome: DecisionOutcome;
  /**
   * Who decided (`step.decision.by`): the approvers who made the quorum, the denier, the
   * revoker or canceller; empty while pending, for an auto step, an expiry, or a job closed by
   * its agent.
   */
  by: Decider[];
  /** The job's end reason when the job has ended (e.g. `step post-summary denied by <user id>`). */
  reason?: string;
  /** The job as last seen. */
  job: JobView;
  step: JobStepView;
}
