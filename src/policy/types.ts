/** TypeScript view of `policies/wpc.schema.json`. The schema is the authority; keep the two in step. */
export interface ApprovalRule {
  allowed_approver_groups: string[];
  approval_phrase: 'APPROVE job:{job_id} step:{step}';
  required_approvals: number;
  distinct_groups: boolean;
  allow_requester_approval: boolean;
  approval_ttl_seconds: number;
}

/** `button`: Approve and Deny buttons on the status post (Mattermost interactive message actions). */
export type ApprovalMethod = 'phrase' | 'button';

export type ApprovalOverride = Partial<Omit<ApprovalRule, 'approval_phrase'>>;

export interface RunbookParam {
  type: 'string' | 'integer' | 'boolean';
  description: string;
  required?: boolean;
  default?: string | number | boolean;
  pattern?: string;
  enum?: (string | number)[];
  minimum?: number;
  maximum?: number;
  max_length?: number;
}

export interface RunbookStep {
  id: string;
  tool: string;
  args?: Record<string, string | number | boolean>;
  summary: string;
}

export interface Runbook {
  description: string;
  params?: Record<string, RunbookParam>;
  executor: string;
  steps: RunbookStep[];
}

/** A gateway redaction rule (Claw Bureau WPC v1 `redaction_rules[]`). */
export interface RedactionRule {
  path: string;
  action: 'remove' | 'hash' | 'mask';
}

/** Model providers a policy may name; `openrouter-via-fal` reaches the gateway as `openai`. */
export type ModelProvider = 'openai' | 'anthropic' | 'google' | 'openrouter-via-fal';

/** The approval policy as authors write it (`policies/*.json`), carried whole in the signed payload. */
export interface Wpc {
  wpc_version: '1';
  policy_name: string;
  /** The enterprise issuing the policy; hash-bound, so it is never taken from the signing key. */
  issuer_did?: string;
  description?: string;
  channel_context: {
    system: 'mattermost';
    allowed_team_ids: string[];
    allowed_channel_ids: string[];
    requester_groups: string[];
  };
  tools: { profile: 'allowlist'; allow: string[]; deny: string[] };
  execution: {
    require_human_approval_for: string[];
    approval_rule: ApprovalRule;
    /** How a gated step may be decided; the phrase always works (default `["phrase"]`). */
    approval_methods?: ApprovalMethod[];
    simulate_first?: { simulation_tool: string; required_before: string[] };
    step_overrides?: Record<string, ApprovalOverride>;
  };
  models?: {
    provider?: ModelProvider;
    allowed_models?: string[];
    route_through: 'clawproxy';
    require_gateway_receipts: boolean;
  };
  data_boundaries?: {
    pii?: 'allow' | 'redact_in_logs' | 'deny';
    export?: 'allow' | 'deny';
    allowed_data_classes?: string[];
    denied_data_classes?: string[];
    egress_allowlist?: string[];
    redaction_rules?: RedactionRule[];
  };
  token_requirements: {
    cst_ttl_seconds_max: number;
    policy_hash_pinning: 'required';
    job_scoped_binding: true;
    audience: string;
    subject: string;
    extra_scopes?: string[];
  };
  attestation: { require_proof_bundle: boolean; require_gateway_receipts: boolean };
  runbooks?: Record<string, Runbook>;
  /**
   * Written by the loader, never by authors: each Mattermost name this version relies on (in
   * its own text and in the groups it names) and the id it stood for when it was signed.
   */
  mattermost_names?: MattermostNames;
}

/** Name as written -> id, per kind (a user and a group may share a name). */
export interface MattermostNames {
  users?: Record<string, string>;
  groups?: Record<string, string>;
  teams?: Record<string, string>;
  channels?: Record<string, string>;
}

/**
 * What is hashed and signed: a Claw Bureau Work Policy Contract v1 payload
 * (`work_policy_contract.v1.json`), whose gateway fields are derived from the approval policy
 * carried whole in `metadata.claw_approvals`.
 */
export interface WpcPayload {
  policy_version: '1';
  policy_id: string;
  issuer_did: string;
  allowed_providers?: ('openai' | 'anthropic' | 'google')[];
  allowed_models?: string[];
  egress_allowlist?: string[];
  receipt_privacy_mode?: 'hash_only' | 'encrypted';
  redaction_rules?: RedactionRule[];
  metadata: { claw_approvals: Wpc };
}

/** One `groups.json` entry: each field takes an id or a name (see `mattermost-refs.ts`). */
export interface GroupMember {
  user_id?: string;
  mattermost_group?: string;
  mattermost_channel?: string;
  note?: string;
}

export interface GroupsFile {
  groups_version: '1';
  groups: Record<string, { description?: string; members: GroupMember[] }>;
}
