import { type Insertable, sql } from 'kysely';
import type { Db } from '../db/database.js';
import type {
  DecisionRow,
  DecisionsTable,
  JobEventRow,
  JobRow,
  JobStepRow,
  StepStatus,
  TokensTable,
  WpcRegistryRow,
} from '../db/schema.js';
import { AppError } from '../errors.js';
import { type ChainHead, chainEvent, type EventType } from '../proofs/event-chain.js';

/**
 * A job as one deciding transaction needs it, read in one statement (issue 13: the deciding
 * approval in a few round trips), and the rows it writes, written in one. The statement that
 * reads runs after the one that locks (`lockForDecision`): in READ COMMITTED each statement
 * sees what committed before it began, so reading after the lock sees every change made by
 * whoever held the lock before.
 */

/** An accepted, not withdrawn approval of one step. */
export interface LiveDecision {
  id: number;
  user_id: string;
  post_id: string | null;
  created_at: Date;
}

/** The job's standing requester confirmation (an agent's job). */
export interface ConfirmDecision {
  id: number;
  userId: string;
  postId: string | null;
}

export interface JobState {
  steps: JobStepRow[];
  /** Live approvals of the step asked about, in approval order. */
  live: LiveDecision[];
  confirmation: ConfirmDecision | null;
  /** The pinned policy's registry rows (verified by `verifiedApprovalPolicy`). */
  policyRows: WpcRegistryRow[];
  /** The chain's last event, where the next one links. */
  head: ChainHead | null;
  /** decision id → hash of its `approval_recorded` event. */
  approvalEvents: Map<number, string>;
  /** Work is paused (read while this transaction holds the kill switch's share lock). */
  paused: boolean;
  pauseReason: string | null;
  /** The earlier decision on the post asked about, if any. */
  previous: DecisionRow | null;
  /** Reason codes of this person's earlier refused decisions on the job. */
  rejectedCodes: Set<string>;
  /** A fresh decision id (taken after the lock, so ids follow the order decisions are made). */
  decisionId: number | null;
}

/** JSON built by the database gives timestamps as text: these columns are dates. */
function withDates<T>(row: Record<string, unknown>): T {
  const out: Record<string, unknown> = { ...row };
  for (const [k, v] of Object.entries(out)) {
    if (typeof v === 'string' && k.endsWith('_at')) out[k] = new Date(v);
  }
  return out as T;
}

/** JSON columns arrive parsed from pg and PGlite alike; a string (some drivers) is parsed here. */
function json<T>(v: unknown): T {
  return (typeof v === 'string' ? JSON.parse(v) : v) as T;
}

/** The live approvals of one step, as JSON (`jobId` and `stepId` are SQL values). */
const liveApprovals = (jobId: unknown, stepId: unknown) => sql`
  (select coalesce(json_agg(json_build_object('id', x.id, 'user_id', x.user_id, 'post_id', x.post_id, 'created_at', x.created_at) order by x.id), '[]')
     from decisions x
    where x.job_id = ${jobId} and x.step_id = ${stepId} and x.kind = 'approve'
      and x.outcome = 'accepted' and x.withdrawn_at is null)`;

/** The job's standing requester confirmation, as JSON. */
const standingConfirmation = (jobId: unknown) => sql`
  (select json_build_object('id', x.id, 'userId', x.user_id, 'postId', x.post_id)
     from decisions x
    where x.job_id = ${jobId} and x.kind = 'confirm' and x.outcome = 'accepted' and x.withdrawn_at is null
    order by x.id desc limit 1)`;

/** What deciding on a step has to ask Mattermost about (see `readDecisionNeeds`). */
export interface DecisionNeedsState {
  job: JobRow;
  steps: JobStepRow[];
  live: LiveDecision[];
  confirmation: ConfirmDecision | null;
}

/**
 * What deciding on `stepId` has to ask Mattermost about, as one JSON value (null: there is no
 * such job), so that a statement reading something else can read it too; `decisionNeedsOf`
 * reads the value.
 */
export const decisionNeedsJson = (q: { jobId: number; stepId: string }) => sql<unknown>`
  (select json_build_object(
      'job', row_to_json(j),
      'steps', (select coalesce(json_agg(s order by s.position), '[]') from job_steps s where s.job_id = j.id),
      'live', ${liveApprovals(sql`j.id`, q.stepId)},
      'confirmation', ${standingConfirmation(sql`j.id`)})
     from jobs j where j.id = ${q.jobId})`;

/** The value `decisionNeedsJson` read; undefined when there is no such job. */
export function decisionNeedsOf(value: unknown): DecisionNeedsState | undefined {
  const v = json<Record<string, unknown> | null>(value);
  if (!v) return undefined;
  return {
    job: withDates<JobRow>(json<Record<string, unknown>>(v.job)),
    steps: json<Record<string, unknown>[]>(v.steps).map((s) => withDates<JobStepRow>(s)),
    live: json<Record<string, unknown>[]>(v.live).map((x) => withDates<LiveDecision>(x)),
    confirmation: json<ConfirmDecision | null>(v.confirmation),
  };
}

/**
 * One statement, without locks: what deciding on `stepId` has to ask Mattermost about, read
 * before the job is locked (the job, its steps, the step's live approvals and the standing
 * confirmation). Undefined: there is no such job.
 */
export async function readDecisionNeeds(
  db: Db,
  q: { jobId: number; stepId: string },
): Promise<DecisionNeedsState | undefined> {
  const r = await sql<{ needs: unknown }>`select ${decisionNeedsJson(q)} as needs`.execute(db);
  return decisionNeedsOf(r.rows[0]?.needs);
}

/**
 * One statement: everything a decision or a mint on `jobId` (and step `stepId`) reads. With
 * `decisionFor`, also the earlier decision on that post, that person's earlier refusals and a
 * fresh decision id.
 */
export async function readJobState(
  db: Db,
  q: {
    jobId: number;
    stepId: string | null;
    policyHash: string;
    decisionFor?: { userId: string; postId: string | null };
  },
): Promise<JobState> {
  const d = q.decisionFor;
  const r = await sql<{
    steps: unknown;
    live: unknown;
    confirmation: unknown;
    policy_rows: unknown;
    head: unknown;
    approval_events: unknown;
    paused: boolean | null;
    pause_reason: string | null;
    previous: unknown;
    rejected_codes: unknown;
    decision_id: number | string | null;
  }>`
    select
      (select coalesce(json_agg(s order by s.position), '[]') from job_steps s where s.job_id = ${q.jobId}) as steps,
      ${liveApprovals(q.jobId, q.stepId)} as live,
      ${standingConfirmation(q.jobId)} as confirmation,
      (select coalesce(json_agg(w), '[]') from wpc_registry w where w.policy_hash_b64u = ${q.policyHash}) as policy_rows,
      (select json_build_object('seq', e.seq, 'hash', e.event_hash_b64u)
         from job_events e where e.job_id = ${q.jobId} order by e.seq desc limit 1) as head,
      (select coalesce(json_agg(json_build_object('d', e.payload::json -> 'decision_id', 'h', e.event_hash_b64u)), '[]')
         from job_events e where e.job_id = ${q.jobId} and e.event_type = 'approval_recorded') as approval_events,
      (select k.paused from kill_switch k where k.id = 1) as paused,
      (select k.reason from kill_switch k where k.id = 1) as pause_reason,
      ${
        d?.postId
          ? sql`(select row_to_json(x) from decisions x where x.post_id = ${d.postId})`
          : sql`null::json`
      } as previous,
      ${
        d
          ? sql`(select coalesce(json_agg(distinct x.reason_code), '[]') from decisions x
                  where x.job_id = ${q.jobId} and x.user_id = ${d.userId} and x.outcome = 'rejected')`
          : sql`'[]'::json`
      } as rejected_codes,
      ${d ? sql`nextval(pg_get_serial_sequence('decisions', 'id'))` : sql`null::bigint`} as decision_id
  `.execute(db);
  const row = r.rows[0]!;
  if (row.paused === null) throw new AppError('ERR_INTERNAL', 'the kill switch state is missing');
  const events = json<{ d: unknown; h: string }[]>(row.approval_events);
  const previous = json<Record<string, unknown> | null>(row.previous);
  return {
    steps: json<Record<string, unknown>[]>(row.steps).map((s) => withDates<JobStepRow>(s)),
    live: json<Record<string, unknown>[]>(row.live).map((x) => withDates<LiveDecision>(x)),
    confirmation: json<ConfirmDecision | null>(row.confirmation),
    policyRows: json<WpcRegistryRow[]>(row.policy_rows),
    head: json<ChainHead | null>(row.head),
    approvalEvents: new Map(events.flatMap((e) => (typeof e.d === 'number' ? [[e.d, e.h] as const] : []))),
    paused: row.paused,
    pauseReason: row.pause_reason,
    previous: previous ? withDates<DecisionRow>(previous) : null,
    rejectedCodes: new Set(json<string[]>(row.rejected_codes)),
    decisionId: row.decision_id === null ? null : Number(row.decision_id),
  };
}

/**
 * The deciding transaction's locks, in one statement and in the order every deciding
 * transaction takes them: the post's advisory lock (one replica decides a post, the other
 * replays it), the kill switch's share lock (before any job row: see `lockJob`), then the job
 * row. Undefined job: there is no such job (the other locks are held all the same).
 */
export async function lockForDecision(
  trx: Db,
  jobId: number,
  postId: string | undefined,
): Promise<JobRow | undefined> {
  // Each lock's subquery depends on the one before (`held`), so they are taken in this order.
  const r = await sql<{ job: unknown }>`
    with adv as materialized (
      select 1 as held ${postId === undefined ? sql`` : sql`from (select pg_advisory_xact_lock(hashtextextended(${postId}, 0))) a`}
    ),
    ks as materialized (
      select adv.held from kill_switch, adv where kill_switch.id = 1 for share of kill_switch
    )
    select (select row_to_json(j) from (
      select jobs.* from jobs where jobs.id = ${jobId} and ks.held = 1 for update of jobs
    ) j) as job
    from ks
  `.execute(trx);
  const row = r.rows[0];
  if (!row) throw new AppError('ERR_INTERNAL', 'the kill switch state is missing');
  const job = json<Record<string, unknown> | null>(row.job);
  return job ? withDates<JobRow>(job) : undefined;
}

/**
 * The rows a deciding transaction writes, gathered in memory and written in one statement
 * (`flush`). Events are chained here, from the head read with the job locked.
 */
export class WriteBatch {
  readonly decisions: Insertable<DecisionsTable>[] = [];
  readonly events: JobEventRow[] = [];
  readonly tokens: Insertable<TokensTable>[] = [];
  /** Withdrawals of decisions already stored (one inserted by this batch is inserted withdrawn). */
  private readonly withdrawals: { id: number; reason: string }[] = [];
  readonly stepStatus = new Map<string, StepStatus>();
  private confirmationCleared = false;
  private at: Date | null = null;

  constructor(
    readonly jobId: number,
    private head: ChainHead | null,
  ) {}

  /** Appends an event to the job's chain (in memory until `flush`). */
  append(type: EventType, payload: Record<string, unknown>, at: Date): JobEventRow {
    const row = chainEvent(this.head, this.jobId, type, payload, at);
    this.head = { seq: row.seq, hash: row.event_hash_b64u };
    this.events.push(row);
    return row;
  }

  setStep(stepId: string, status: StepStatus, at: Date): void {
    this.stepStatus.set(stepId, status);
    this.at = at;
  }

  /**
   * Withdraws a decision. One this batch inserts is inserted withdrawn: in PostgreSQL the parts
   * of one statement do not see each other's rows, so an update of it in `flush` would match
   * nothing and leave the database disagreeing with the chain.
   */
  withdraw(decisionId: number, reason: string, at: Date): void {
    const inserted = this.decisions.find((d) => d.id === decisionId);
    if (inserted) {
      inserted.withdrawn_at = at;
      inserted.withdrawn_reason = reason;
      return;
    }
    this.withdrawals.push({ id: decisionId, reason });
    this.at = at;
  }

  clearConfirmation(): void {
    this.confirmationCleared = true;
  }

  get empty(): boolean {
    return (
      this.decisions.length + this.events.length + this.tokens.length + this.withdrawals.length === 0 &&
      this.stepStatus.size === 0 &&
      !this.confirmationCleared
    );
  }

  /**
   * Writes everything in one statement (data-modifying CTEs run exactly once each). Unique
   * constraints still hold: a second token for the step, or a chain position taken, fails it.
   *
   * Every part of the statement sees the tables as they were before it began, none sees
   * another's changes: so no part may read, update or match rows another part writes. The
   * inserts (decisions, events, tokens) are only inserted; the updates touch rows stored before
   * (decisions withdrawn, the job's steps, the job), each at most once. A batch that would
   * break this is refused, and nothing is written.
   */
  async flush(trx: Db): Promise<void> {
    if (this.empty) return;
    this.checkOneStatement();
    const at = this.at;
    const parts: { execute(): Promise<unknown> }[] = [];
    const cte = (q: { execute(): Promise<unknown> }) => q;
    if (this.decisions.length > 0) parts.push(cte(trx.insertInto('decisions').values(this.decisions)));
    if (this.events.length > 0) parts.push(cte(trx.insertInto('job_events').values(this.events)));
    if (this.tokens.length > 0) parts.push(cte(trx.insertInto('tokens').values(this.tokens)));
    for (const reason of new Set(this.withdrawals.map((w) => w.reason))) {
      const ids = this.withdrawals.filter((w) => w.reason === reason).map((w) => w.id);
      parts.push(
        cte(
          trx
            .updateTable('decisions')
            .set({ withdrawn_at: at!, withdrawn_reason: reason })
            .where('id', 'in', ids),
        ),
      );
    }
    for (const [stepId, status] of this.stepStatus) {
      parts.push(
        cte(
          trx
            .updateTable('job_steps')
            .set({ status, updated_at: at! })
            .where('job_id', '=', this.jobId)
            .where('step_id', '=', stepId),
        ),
      );
    }
    if (this.confirmationCleared) {
      parts.push(
        cte(trx.updateTable('jobs').set({ requester_confirmed_at: null }).where('id', '=', this.jobId)),
      );
    }
    if (parts.length === 1) {
      await parts[0]!.execute();
      return;
    }
    const ctes = sql.join(
      parts.map((p, i) => sql`${sql.raw(`w${i}`)} as (${p})`),
      sql`, `,
    );
    await sql`with ${ctes} select 1`.execute(trx);
  }

  private checkOneStatement(): void {
    const inserted = new Set(this.decisions.map((d) => d.id));
    const withdrawn = new Set<number>();
    for (const w of this.withdrawals) {
      if (inserted.has(w.id))
        throw new AppError(
          'ERR_INTERNAL',
          `decision ${w.id} would be updated by the statement that inserts it; nothing was written`,
        );
      if (withdrawn.has(w.id))
        throw new AppError(
          'ERR_INTERNAL',
          `decision ${w.id} would be withdrawn twice in one statement; nothing was written`,
        );
      withdrawn.add(w.id);
    }
  }
}
