import type { Db } from '../db/database.js';
import type { JobRow, JobStepRow, TokenRow } from '../db/schema.js';
import type { ApprovalRule } from '../policy/types.js';
import { currentQuorum } from '../tokens/mint-step-token.js';
import type { EngineContext } from './context.js';
import { findJob, jobPlan, jobSteps, stepRule } from './job-repository.js';

/** How a decision reached the engine. */
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
  /**
   * The groups that let them decide: for an approval, the one group it was counted for; for a
   * denial, revoke or cancel, the groups they were found in when they decided.
   */
  groups: string[];
  via: DecisionVia;
  /** When they decided. */
  at: string;
}

export interface StepDecision {
  outcome: StepOutcome;
  /**
   * Who decided: the approvals that made the quorum (oldest first; a withdrawn approval never
   * counts), the denier, the revoker or canceller; nobody for an auto step, an expiry, or an
   * ending the record names no one for (a job closed by its agent).
   */
  by: Decider[];
  /** The denier's reason; for a step stopped by its job's ending, the job's end reason; null for an approval. */
  reason: string | null;
  at: string;
}

/** What an agent (or the bot) sees of a job: never a token, never another agent's data. */
export interface JobView {
  id: string;
  job_id: number;
  status: string;
  origin: string;
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
  steps: {
    id: string;
    tool: string;
    args: Record<string, string | number | boolean>;
    summary: string;
    gate: string;
    status: string;
    required_approvals: number;
    approver_groups: string[];
    distinct_groups: boolean;
    /**
     * Approvals that count now, as the quorum would count them (current group membership, the
     * requester excluded, one per person); null when membership cannot be checked at the moment.
     */
    approvals: number | null;
    simulation_step: string | null;
    token: { jti: string; expires_at: string; claimable: boolean } | null;
    /** Null while the step awaits approval in an open job. Never a post id or a token. */
    decision: StepDecision | null;
  }[];
}

/** What a view is made of, besides the job's row: read together (see `snapshotJobView`). */
interface ViewRows {
  steps: JobStepRow[];
  tokens: Map<
    string,
    Pick<TokenRow, 'step_id' | 'jti' | 'issued_at' | 'expires_at' | 'compact' | 'revoked_at'>
  >;
  decided: ReturnType<typeof decisionFacts>;
}

async function viewRows(db: Db, jobId: number): Promise<ViewRows> {
  const steps = await jobSteps(db, jobId);
  const tokens = new Map(
    (
      await db
        .selectFrom('tokens')
        .select(['step_id', 'jti', 'issued_at', 'expires_at', 'compact', 'revoked_at'])
        .where('job_id', '=', jobId)
        .execute()
    ).map((t) => [t.step_id, t]),
  );
  return { steps, tokens, decided: decisionFacts(await decisionRecords(db, jobId)) };
}

/** Approvals that count now, per gated step (see `countingNow`). */
async function approvalCounts(
  engine: EngineContext | undefined,
  db: Db,
  job: JobRow,
  steps: JobStepRow[],
): Promise<Map<string, number | null>> {
  const counts = new Map<string, number | null>();
  for (const s of steps) {
    const rule = stepRule(s);
    if (s.gate !== 'gated' || rule === null) continue;
    counts.set(s.step_id, await countingNow(engine, db, job, s, rule));
  }
  return counts;
}

/**
 * The job as an agent (or `status`) sees it. Approvals are counted as the quorum would count
 * them now, which needs the engine's directory; without `engine` they are reported as unknown
 * (null), never as the stale number of decision rows. The rows are read in `db` statement by
 * statement; `snapshotJobView` reads them from one snapshot.
 */
export async function jobView(db: Db, job: JobRow, engine?: EngineContext): Promise<JobView> {
  const rows = await viewRows(db, job.id);
  return viewOf(job, rows, await approvalCounts(engine, db, job, rows.steps));
}

/** The last event's sequence number: it moves with every change of the job. */
export async function chainVersion(db: Db, jobId: number): Promise<number> {
  const row = await db
    .selectFrom('job_events')
    .select((eb) => eb.fn.max('seq').as('v'))
    .where('job_id', '=', jobId)
    .executeTakeFirst();
  return Number(row?.v ?? 0);
}

/**
 * The job and its chain's version as one snapshot shows them (undefined: no such job). Read
 * statement by statement instead, a change committed between two reads could show, say, an
 * open job whose steps its expiry had cancelled, and an agent waiting on it would be told its
 * step was cancelled, not that the approval window elapsed. The approvals that count now are
 * counted after the snapshot's transaction, as `jobView` counts them: counting may ask
 * Mattermost, and the snapshot does not hold a connection while it waits (with embedded PGlite,
 * every other query would wait too).
 */
export async function snapshotJobView(
  engine: EngineContext,
  jobId: number,
): Promise<{ view: JobView; version: number } | undefined> {
  const read = await engine.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const job = await findJob(trx, jobId);
      if (!job) return undefined;
      const rows = await viewRows(trx, jobId);
      return { job, rows, version: await chainVersion(trx, jobId) };
    });
  if (!read) return undefined;
  const counts = await approvalCounts(engine, engine.db, read.job, read.rows.steps);
  return { view: viewOf(read.job, read.rows, counts), version: read.version };
}

function viewOf(job: JobRow, rows: ViewRows, counts: Map<string, number | null>): JobView {
  const { steps, tokens, decided } = rows;
  const plan = new Map(jobPlan(job).map((s) => [s.id, s]));
  return {
    id: `job:${job.id}`,
    job_id: job.id,
    status: job.status,
    origin: job.origin,
    channel_id: job.channel_id,
    root_post_id: job.root_post_id,
    requester_id: job.requester_id,
    executor: job.executor,
    runbook: job.runbook,
    policy: { name: job.policy_name, policy_hash_b64u: job.policy_hash_b64u },
    plan_hash_b64u: job.plan_hash_b64u,
    created_at: job.created_at.toISOString(),
    expires_at: job.expires_at.toISOString(),
    ended_at: job.ended_at?.toISOString() ?? null,
    end_reason: job.end_reason,
    bundle_id: job.bundle_id,
    steps: steps.map((s) => {
      const rule = stepRule(s);
      const t = tokens.get(s.step_id);
      const p = plan.get(s.step_id);
      return {
        id: s.step_id,
        tool: s.tool,
        args: p?.args ?? {},
        summary: p?.summary ?? '',
        gate: s.gate,
        status: s.status,
        required_approvals: rule?.required_approvals ?? 0,
        approver_groups: rule?.allowed_approver_groups ?? [],
        distinct_groups: rule?.distinct_groups ?? false,
        approvals: counts.has(s.step_id) ? (counts.get(s.step_id) ?? null) : 0,
        simulation_step: s.simulation_step,
        token: t
          ? {
              jti: t.jti,
              expires_at: t.expires_at.toISOString(),
              claimable: t.compact !== null && t.revoked_at === null && job.status === 'open',
            }
          : null,
        decision: stepDecision(job, s, t, decided),
      };
    }),
  };
}

/** How many approvals of a step count now; null when the directory cannot say. */
async function countingNow(
  engine: EngineContext | undefined,
  db: Db,
  job: JobRow,
  step: JobStepRow,
  rule: ApprovalRule,
): Promise<number | null> {
  if (!engine) return null;
  try {
    return (await currentQuorum(engine, db, job, step, rule)).counted.length;
  } catch (err) {
    engine.log.warn({ err, jobId: job.id, step: step.step_id }, 'approvals of a step could not be counted');
    return null;
  }
}

/** The events that record who settled a step; the job's revoke or cancel decision comes with its own. */
const DECIDING_EVENTS = [
  'approval_recorded',
  'step_denied',
  'token_minted',
  'token_revoked',
  'job_revoked',
  'job_cancelled',
] as const;

export interface DecisionRecord {
  event_type: string;
  payload: string;
  timestamp: string;
  /** For `job_revoked` and `job_cancelled`: the job's accepted revoke or cancel decision, if any. */
  decision_id: number | null;
  post_id: string | null;
  groups: string | null;
}

/**
 * One query for the whole job, however many steps it has: its deciding events in chain order,
 * each revoke or cancel event with the job's accepted revoke or cancel decision (a job ends
 * once, so there is at most one).
 */
async function decisionRecords(db: Db, jobId: number): Promise<DecisionRecord[]> {
  return db
    .selectFrom('job_events as e')
    .leftJoin('decisions as d', (join) =>
      join
        .onRef('d.job_id', '=', 'e.job_id')
        .on('e.event_type', 'in', ['job_revoked', 'job_cancelled'])
        .on('d.kind', 'in', ['revoke', 'cancel'])
        .on('d.outcome', '=', 'accepted'),
    )
    .select(['e.event_type', 'e.payload', 'e.timestamp', 'd.id as decision_id', 'd.post_id', 'd.groups'])
    .where('e.job_id', '=', jobId)
    .where('e.event_type', 'in', DECIDING_EVENTS)
    .orderBy('e.seq')
    .execute();
}

/** Who settled what, read from a job's deciding records. */
export interface DecisionFacts {
  /** The people a step's token was minted on (the quorum), by step; [] for an auto step. */
  minted: Map<string, { at: string; by: Decider[] }>;
  /** The step denial that ended the job, if one did. */
  denial: { step: string; by: Decider; reason: string | null; at: string } | null;
  /** Who revoked or cancelled the job, when the record names someone. */
  ender: Decider | null;
}

const text = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const texts = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((g): g is string => typeof g === 'string') : [];

/** A step decision's channel: a post of its own is a chat phrase; the event names a button click. */
function stepVia(p: Record<string, unknown>): DecisionVia {
  if (p.method === 'button') return 'button';
  return text(p.post_id) !== null ? 'chat' : 'api';
}

/** Reads the deciding records of one job (chain order). Pure. */
export function decisionFacts(records: readonly DecisionRecord[]): DecisionFacts {
  const approvals = new Map<number, { at: string; via: DecisionVia }>();
  const facts: DecisionFacts = { minted: new Map(), denial: null, ender: null };
  let tokenRevoker: Decider | null = null;
  for (const r of records) {
    const p = JSON.parse(r.payload) as Record<string, unknown>;
    switch (r.event_type) {
      case 'approval_recorded':
        if (typeof p.decision_id === 'number')
          approvals.set(p.decision_id, { at: r.timestamp, via: stepVia(p) });
        break;
      case 'token_minted': {
        const step = text(p.step);
        if (step === null) break;
        const approval = p.approval as { approvers?: { user_id?: unknown; username?: unknown }[] } | null;
        const usernames = new Map(
          (approval?.approvers ?? []).map((a) => [text(a.user_id), text(a.username)] as const),
        );
        const counted = Array.isArray(p.counted)
          ? (p.counted as { user_id?: unknown; group?: unknown; decision_id?: unknown }[])
          : [];
        const by = counted.flatMap((c): Decider[] => {
          const userId = text(c.user_id);
          if (userId === null) return [];
          const approved = typeof c.decision_id === 'number' ? approvals.get(c.decision_id) : undefined;
          const group = text(c.group);
          return [
            {
              user_id: userId,
              username: usernames.get(userId) ?? null,
              groups: group === null ? [] : [group],
              via: approved?.via ?? 'api',
              at: approved?.at ?? r.timestamp,
            },
          ];
        });
        by.sort((a, b) => a.at.localeCompare(b.at) || a.user_id.localeCompare(b.user_id));
        facts.minted.set(step, { at: r.timestamp, by });
        break;
      }
      case 'step_denied': {
        const step = text(p.step);
        const userId = text(p.user_id);
        if (step === null || userId === null) break;
        facts.denial = {
          step,
          by: { user_id: userId, username: null, groups: texts(p.groups), via: stepVia(p), at: r.timestamp },
          reason: text(p.reason),
          at: r.timestamp,
        };
        break;
      }
      case 'token_revoked': {
        // Revoked through the API (`by`); the job's own ending revokes its tokens without one.
        const by = text(p.by);
        if (by !== null)
          tokenRevoker = { user_id: by, username: null, groups: [], via: 'api', at: r.timestamp };
        break;
      }
      case 'job_revoked':
      case 'job_cancelled': {
        const userId = text(p.user_id);
        if (userId === null) {
          facts.ender = r.event_type === 'job_revoked' ? tokenRevoker : null;
          break;
        }
        const decision = r.decision_id !== null && r.decision_id === p.decision_id;
        facts.ender = {
          user_id: userId,
          username: null,
          groups: decision && r.groups !== null ? texts(JSON.parse(r.groups)) : [],
          // A revoke or cancel with a post of its own was typed in the thread; an operator's
          // comes through the admin API; a person's without a post, through the slash command.
          via:
            decision && r.post_id !== null
              ? 'chat'
              : userId.startsWith('admin:') || !decision
                ? 'api'
                : 'command',
          at: r.timestamp,
        };
        break;
      }
    }
  }
  return facts;
}

const RAN: ReadonlySet<string> = new Set(['approved', 'claimed', 'succeeded', 'failed']);

/**
 * How the step was settled and by whom, from the job's deciding records; null while it awaits
 * approval. A step its job's ending stopped answers that ending.
 */
export function stepDecision(
  job: JobRow,
  step: JobStepRow,
  token: Pick<TokenRow, 'issued_at'> | undefined,
  facts: DecisionFacts,
): StepDecision | null {
  if (RAN.has(step.status)) {
    const minted = facts.minted.get(step.step_id);
    return {
      outcome: step.gate === 'auto' ? 'auto' : 'approved',
      by: minted?.by ?? [],
      reason: null,
      at: minted?.at ?? (token?.issued_at ?? step.updated_at).toISOString(),
    };
  }
  if (step.status === 'denied' || (step.status !== 'awaiting_approval' && job.status === 'denied')) {
    const d = facts.denial;
    return {
      outcome: 'denied',
      by: d ? [d.by] : [],
      reason: d ? d.reason : job.end_reason,
      at: d?.at ?? endedAt(job),
    };
  }
  if (step.status === 'awaiting_approval' || job.status === 'open') return null;
  const outcome: StepOutcome =
    job.status === 'revoked' || job.status === 'expired' || job.status === 'cancelled'
      ? job.status
      : 'cancelled';
  const ender = job.status === 'revoked' || job.status === 'cancelled' ? facts.ender : null;
  return { outcome, by: ender ? [ender] : [], reason: job.end_reason, at: endedAt(job) };
}

function endedAt(job: JobRow): string {
  return (job.ended_at ?? job.updated_at).toISOString();
}
