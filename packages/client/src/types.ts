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
  /** The job's end reason when the job has ended (e.g. `step post-summary denied by <user id>`). */
  reason?: string;
  /** The job as last seen. */
  job: JobView;
  step: JobStepView;
}
