import { AGENT_ID, type AgentRevoked } from '../../agents/agent-keys.js';
import type { Db } from '../../db/database.js';
import type { AgentRow, PolicyPinRow } from '../../db/schema.js';
import { AppError } from '../../errors.js';
import { hasUnsafeText } from '../../jobs/plan.js';
import type { PauseChange, PauseState } from '../../jobs/kill-switch.js';
import { pinHistory } from '../../policy/pins.js';
import type { PolicySnapshot } from '../../policy/policy-service.js';
import { listRegisteredPolicies } from '../../policy/registry.js';

/**
 * What the admin routes and the CLI share: the rules an operator's input must meet (checked by
 * the CLI before it picks a path, and by the routes after their schemas), and the views of each
 * operation's result. The CLI renders the same view whether it ran the operation on the
 * database itself or asked the running server, so both paths print the same.
 */

/** The operator's name the CLI records (`--actor`). */
export const MAX_ACTOR = 128;
/** What the admin routes accept as the recorded actor: room for the CLI's `cli:` mark on a pause. */
export const MAX_RECORDED_ACTOR = 200;
export const MAX_ADMIN_REASON = 500;
export const MAX_DESCRIPTION = 500;
/** `policy_name` in `wpc.schema.json`. */
export const POLICY_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
export const JTI = /^[0-9a-f-]{36}$/;
export const TOKEN_HASH = /^[0-9a-fA-F]{64}$/;

/** One line of plain text (no control, bidi or zero-width characters), within its bounds. */
export function checkText(what: string, value: string, bounds: { max: number; required?: boolean }): void {
  const min = bounds.required ? 1 : 0;
  if (value.length < min || value.length > bounds.max || hasUnsafeText(value))
    throw new AppError(
      'ERR_VALIDATION',
      `${what} must be one line of plain text of ${min ? `1 to ${bounds.max}` : `at most ${bounds.max}`} characters`,
    );
}

export function checkActor(actor: string, max: number = MAX_ACTOR): void {
  checkText('the actor', actor, { max, required: true });
}

/** The same refusal `createAgent` gives, so an id is judged alike before either path. */
export function checkAgentId(id: string): void {
  if (!AGENT_ID.test(id)) throw new AppError('ERR_VALIDATION', `agent id must match ${AGENT_ID.source}`);
}

export function checkPolicyName(name: string): void {
  if (!POLICY_NAME.test(name))
    throw new AppError('ERR_VALIDATION', `policy name must match ${POLICY_NAME.source}`);
}

export function checkTokenRef(ref: { jti?: string | undefined; tokenHash?: string | undefined }): void {
  if ((ref.jti === undefined) === (ref.tokenHash === undefined))
    throw new AppError('ERR_VALIDATION', 'give exactly one of jti and token_hash');
  if (ref.jti !== undefined && !JTI.test(ref.jti))
    throw new AppError(
      'ERR_VALIDATION',
      'jti must be a token id (36 characters of lowercase hex and dashes)',
    );
  if (ref.tokenHash !== undefined && !TOKEN_HASH.test(ref.tokenHash))
    throw new AppError(
      'ERR_VALIDATION',
      'token_hash must be 64 hex characters (SHA-256 of the compact token)',
    );
}

// ---- Views: what the routes answer, and what the CLI renders. ----

export interface AgentView {
  id: string;
  /** The first 8 characters of the key, enough to tell keys apart. */
  key_hint: string;
  description: string;
  created_at: string;
  revoked_at: string | null;
}

export const agentView = (a: AgentRow): AgentView => ({
  id: a.id,
  key_hint: a.key_hint,
  description: a.description,
  created_at: a.created_at.toISOString(),
  revoked_at: a.revoked_at?.toISOString() ?? null,
});

export interface AgentRevokedView {
  id: string;
  revoked_at: string | null;
  tokens: { jti: string; job_id: number }[];
  jobs_ended: number[];
}

export const agentRevokedView = (r: AgentRevoked): AgentRevokedView => ({
  id: r.agent.id,
  revoked_at: r.agent.revoked_at?.toISOString() ?? null,
  tokens: r.tokens.map((t) => ({ jti: t.jti, job_id: t.jobId })),
  jobs_ended: r.jobsEnded,
});

export interface PinView {
  id: number;
  policy_name: string;
  /** null: the name follows its file again. */
  policy_hash_b64u: string | null;
  actor: string;
  reason: string;
  created_at: string;
}

export const pinView = (p: PolicyPinRow): PinView => ({
  id: p.id,
  policy_name: p.policy_name,
  policy_hash_b64u: p.policy_hash_b64u,
  actor: p.actor,
  reason: p.reason,
  created_at: new Date(p.created_at).toISOString(),
});

export interface TokenRevokedView {
  jti: string;
  job_id: number;
  already_revoked: boolean;
  job_ended: boolean;
}

export const tokenRevokedView = (r: {
  jti: string;
  jobId: number;
  alreadyRevoked: boolean;
  jobEnded: boolean;
}): TokenRevokedView => ({
  jti: r.jti,
  job_id: r.jobId,
  already_revoked: r.alreadyRevoked,
  job_ended: r.jobEnded,
});

/** The shape of `GET /v1/admin/pause`. */
export interface PauseStateView {
  paused: boolean;
  actor: string | null;
  reason: string | null;
  changed_at: string | null;
}

export const pauseStateView = (s: PauseState): PauseStateView => ({
  paused: s.paused,
  actor: s.actor,
  reason: s.reason,
  changed_at: s.changedAt?.toISOString() ?? null,
});

export interface PauseChangeView extends PauseStateView {
  changed: boolean;
  open_jobs: number;
}

export const pauseChangeView = (c: PauseChange): PauseChangeView => ({
  ...pauseStateView(c.state),
  changed: c.changed,
  open_jobs: c.jobs.length,
});

export interface PolicyReport {
  policies: {
    name: string;
    active_hash: string | null;
    origin: string;
    channels: string[];
    versions: { hash: string; registered_at: string; source: string | null }[];
    pins: { id: number; hash: string | null; actor: string; reason: string; at: string }[];
  }[];
  problems: string[];
}

/** Every policy name: its active version and origin, channels, registered versions and pins. */
export async function policyReport(db: Db, snap: PolicySnapshot): Promise<PolicyReport> {
  const versions = await listRegisteredPolicies(db);
  const names = [
    ...new Set([...versions.map((v) => v.policy_name), ...snap.resolution.active.keys()]),
  ].sort();
  const policies = await Promise.all(
    names.map(async (name) => {
      const active = snap.resolution.active.get(name);
      return {
        name,
        active_hash: active?.hash ?? null,
        origin: active?.origin ?? 'inactive',
        channels: [...snap.resolution.channels].filter(([, b]) => b.policyName === name).map(([c]) => c),
        versions: versions
          .filter((v) => v.policy_name === name)
          .map((v) => ({
            hash: v.policy_hash_b64u,
            registered_at: new Date(v.registered_at).toISOString(),
            source: v.source,
          })),
        pins: (await pinHistory(db, name)).map((p) => ({
          id: p.id,
          hash: p.policy_hash_b64u,
          actor: p.actor,
          reason: p.reason,
          at: new Date(p.created_at).toISOString(),
        })),
      };
    }),
  );
  return { policies, problems: snap.problems };
}

// ---- JSON schemas of the views (response schemas also keep anything else from leaking). ----

const str = { type: 'string' } as const;
const strOrNull = { type: ['string', 'null'] } as const;

export const agentViewSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'key_hint', 'description', 'created_at', 'revoked_at'],
  properties: { id: str, key_hint: str, description: str, created_at: str, revoked_at: strOrNull },
} as const;

export const agentRevokedSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'revoked_at', 'tokens', 'jobs_ended'],
  properties: {
    id: str,
    revoked_at: strOrNull,
    tokens: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['jti', 'job_id'],
        properties: { jti: str, job_id: { type: 'integer' } },
      },
    },
    jobs_ended: { type: 'array', items: { type: 'integer' } },
  },
} as const;

export const pinViewSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'policy_name', 'policy_hash_b64u', 'actor', 'reason', 'created_at'],
  properties: {
    id: { type: 'integer' },
    policy_name: str,
    policy_hash_b64u: strOrNull,
    actor: str,
    reason: str,
    created_at: str,
  },
} as const;

export const tokenRevokedSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['jti', 'job_id', 'already_revoked', 'job_ended'],
  properties: {
    jti: str,
    job_id: { type: 'integer' },
    already_revoked: { type: 'boolean' },
    job_ended: { type: 'boolean' },
  },
} as const;

export const pauseChangeSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['paused', 'actor', 'reason', 'changed_at', 'changed', 'open_jobs'],
  properties: {
    paused: { type: 'boolean' },
    actor: strOrNull,
    reason: strOrNull,
    changed_at: strOrNull,
    changed: { type: 'boolean' },
    open_jobs: { type: 'integer' },
  },
} as const;

export const policyReportSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['policies', 'problems'],
  properties: {
    policies: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'active_hash', 'origin', 'channels', 'versions', 'pins'],
        properties: {
          name: str,
          active_hash: strOrNull,
          origin: { type: 'string', enum: ['file', 'pin', 'inactive'] },
          channels: { type: 'array', items: str },
          versions: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['hash', 'registered_at', 'source'],
              properties: { hash: str, registered_at: str, source: strOrNull },
            },
          },
          pins: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['id', 'hash', 'actor', 'reason', 'at'],
              properties: { id: { type: 'integer' }, hash: strOrNull, actor: str, reason: str, at: str },
            },
          },
        },
      },
    },
    problems: { type: 'array', items: str },
  },
} as const;
