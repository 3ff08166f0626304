import type { ColumnType, Generated, Selectable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, never>;

/** Append-only (a trigger refuses UPDATE and DELETE): a WPC is its hash; one row per signer. */
export interface WpcRegistryTable {
  policy_hash_b64u: string;
  policy_name: string;
  /** The JCS string the hash was computed over, kept verbatim so re-hashing is exact. */
  canonical_payload: string;
  signature_b64u: string;
  signer_did: string;
  issued_at: ColumnType<Date, Date | string, never>;
  /** Policy file the version was first loaded from, if any. */
  source: string | null;
  registered_at: Timestamp;
}

/**
 * Append-only, signed hash chain per policy name; the newest link decides. A null hash means
 * "follow the file".
 */
export interface PolicyPinsTable {
  id: Generated<number>;
  policy_name: string;
  policy_hash_b64u: string | null;
  actor: string;
  reason: string;
  created_at: ColumnType<Date, Date | string, never>;
  prev_pin_hash_b64u: string;
  pin_hash_b64u: string;
  signature_b64u: string;
  signer_did: string;
}

type Moment = ColumnType<Date, Date | string, Date | string>;
type MaybeMoment = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export type JobStatus = 'open' | 'completed' | 'failed' | 'denied' | 'expired' | 'revoked' | 'cancelled';
export type StepStatus =
  'awaiting_approval' | 'approved' | 'claimed' | 'succeeded' | 'failed' | 'denied' | 'revoked' | 'cancelled';

/** Agents authenticate with a bearer key; only its SHA-256 is stored. */
export interface AgentsTable {
  id: string;
  key_hash: string;
  key_hint: string;
  description: ColumnType<string, string | undefined, string>;
  created_at: Moment;
  revoked_at: MaybeMoment;
}

export interface JobsTable {
  id: Generated<number>;
  status: JobStatus;
  /** `command`: requested with the `/claw` slash command (its plan post starts its thread). */
  origin: 'mattermost' | 'api' | 'command';
  team_id: string | null;
  channel_id: string | null;
  root_post_id: string | null;
  submitted_by: string | null;
  executor: string;
  requester_id: string;
  policy_name: string;
  policy_hash_b64u: string;
  runbook: string | null;
  params: string | null;
  plan: string;
  plan_hash_b64u: string;
  created_at: Moment;
  expires_at: Moment;
  ended_at: MaybeMoment;
  end_reason: string | null;
  bundle_id: string | null;
  updated_at: Moment;
  /** An agent's job: when the requester it named confirmed it in the thread. */
  requester_confirmed_at: MaybeMoment;
}

export interface JobStepsTable {
  job_id: number;
  step_id: string;
  position: number;
  tool: string;
  gate: 'auto' | 'gated';
  rule: string | null;
  simulation_step: string | null;
  status: StepStatus;
  result_summary: string | null;
  updated_at: Moment;
}

export type DecisionKind = 'approve' | 'deny' | 'revoke' | 'cancel' | 'confirm';

/** Every approval, deny, revoke and cancel, accepted or rejected, with its reason code. */
export interface DecisionsTable {
  id: Generated<number>;
  job_id: number | null;
  named_job: number | null;
  step_id: string | null;
  kind: DecisionKind;
  user_id: string;
  post_id: string | null;
  outcome: 'accepted' | 'rejected';
  reason_code: string;
  reason: string | null;
  groups: ColumnType<string, string | undefined, string>;
  created_at: Moment;
  withdrawn_at: MaybeMoment;
  withdrawn_reason: string | null;
}

export interface TokensTable {
  jti: string;
  job_id: number;
  step_id: string;
  sub: string;
  kid: string;
  token_hash: string;
  scope_hash_b64u: string;
  compact: string | null;
  issued_at: Moment;
  expires_at: Moment;
  claimed_at: MaybeMoment;
  redeemed_at: MaybeMoment;
  revoked_at: MaybeMoment;
  revoke_reason: string | null;
}

/** Append-only hash chain of everything that happened to a job. */
export interface JobEventsTable {
  job_id: number;
  seq: number;
  event_id: string;
  event_type: string;
  timestamp: string;
  payload: string;
  payload_hash_b64u: string;
  prev_hash_b64u: string | null;
  event_hash_b64u: string;
}

export interface GatewayReceiptsTable {
  job_id: number;
  step_id: string;
  position: number;
  envelope: string;
  signer_did: string | null;
  verified: boolean;
  failure: string | null;
  created_at: Moment;
}

/** Sealed proof bundles; append-only. */
export interface BundlesTable {
  bundle_id: string;
  job_id: number;
  envelope: string;
  payload_hash_b64u: string;
  created_at: Moment;
}

/** Chat posts the bot acted on or answered; at most once per post id. */
export interface ChatPostsTable {
  post_id: string;
  channel_id: string;
  root_id: string;
  user_id: string;
  action: string;
  job_id: number | null;
  edit_at: ColumnType<number, number | undefined, number>;
  delete_at: ColumnType<number, number | undefined, number>;
  handled_at: Moment;
}

/** A slash command request handled, by its Mattermost trigger id (replays change nothing). */
export interface CommandRequestsTable {
  trigger_id: string;
  user_id: string;
  channel_id: string;
  action: string;
  job_id: number | null;
  handled_at: Moment;
}

export interface ChatCursorsTable {
  channel_id: string;
  since_ms: number;
  updated_at: Moment;
}

/** Bot posts, reactions and status-post edits waiting for (or past) delivery. */
export interface OutboxTable {
  id: Generated<number>;
  dedupe_key: string;
  kind: 'post' | 'reaction' | 'patch';
  job_id: number | null;
  channel_id: string;
  root_id: string | null;
  message: string | null;
  props: string | null;
  target_post_id: string | null;
  emoji: string | null;
  complaint_user_id: string | null;
  /** A patch: the outbox key of the post it edits (the job's status post). */
  target_key: ColumnType<string | null, string | null | undefined, string | null>;
  /** A patch: bumped every time the job changes, so delivery knows whether it rendered the latest. */
  version: ColumnType<number, number | undefined, number>;
  created_at: Moment;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: Moment;
  lease_until: MaybeMoment;
  /** `<pid> <host> <instance>` of the process holding the lease. */
  lease_owner: ColumnType<string | null, string | null | undefined, string | null>;
  delivered_at: MaybeMoment;
  delivered_post_id: string | null;
  failed_at: MaybeMoment;
  last_error: string | null;
}

/** The kill switch: one row (id 1). Paused, nothing new is requested, approved, minted or claimed. */
export interface KillSwitchTable {
  id: number;
  paused: boolean;
  /** Who changed it last: `user:<Mattermost user id>`, `admin:<how>`. */
  actor: string | null;
  reason: string | null;
  changed_at: MaybeMoment;
}

export interface Database {
  wpc_registry: WpcRegistryTable;
  policy_pins: PolicyPinsTable;
  agents: AgentsTable;
  jobs: JobsTable;
  job_steps: JobStepsTable;
  decisions: DecisionsTable;
  tokens: TokensTable;
  job_events: JobEventsTable;
  gateway_receipts: GatewayReceiptsTable;
  bundles: BundlesTable;
  chat_posts: ChatPostsTable;
  chat_cursors: ChatCursorsTable;
  command_requests: CommandRequestsTable;
  outbox: OutboxTable;
  kill_switch: KillSwitchTable;
}

export type WpcRegistryRow = Selectable<WpcRegistryTable>;
export type PolicyPinRow = Selectable<PolicyPinsTable>;
export type AgentRow = Selectable<AgentsTable>;
export type JobRow = Selectable<JobsTable>;
export type JobStepRow = Selectable<JobStepsTable>;
export type DecisionRow = Selectable<DecisionsTable>;
export type TokenRow = Selectable<TokensTable>;
export type JobEventRow = Selectable<JobEventsTable>;
export type BundleRow = Selectable<BundlesTable>;
export type OutboxRow = Selectable<OutboxTable>;
export type ChatPostRow = Selectable<ChatPostsTable>;
