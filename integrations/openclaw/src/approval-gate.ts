import { type ClawClient, decidersText, type JobView, isClawError } from '@claw-approvals/client';
import { callBindings } from './bindings.js';
import type { GateConfig } from './config.js';
import { classifyTool, type PinnedPolicy } from './policy.js';
import { toolCallStep } from './tool-step.js';

/** What the gate reads of OpenClaw's `before_tool_call` event and context. */
export interface ToolCallEvent {
  toolName: string;
  params: Record<string, unknown>;
  runId?: string | undefined;
  toolCallId?: string | undefined;
}

export interface ToolCallContext {
  agentId?: string | undefined;
  runId?: string | undefined;
  toolCallId?: string | undefined;
  abortSignal?: AbortSignal | undefined;
  requester?: { readonly channel?: string | undefined; readonly senderId?: string | undefined } | undefined;
}

/** What it reads of `after_tool_call`. */
export interface ToolCallOutcome {
  toolName: string;
  runId?: string | undefined;
  toolCallId?: string | undefined;
  result?: unknown;
  error?: string | undefined;
  durationMs?: number | undefined;
}

/**
 * The hook's answer: nothing (an ungated call, untouched), the exact input that was approved
 * (so no other handler's rewrite runs instead), or a block with the reason.
 */
export type GateAnswer =
  { params: Record<string, unknown> } | { block: true; blockReason: string } | undefined;

export interface GateLogger {
  info(message: string): void;
  warn(message: string): void;
}

export interface GateDeps {
  config: GateConfig;
  client: ClawClient;
  policy: () => Promise<PinnedPolicy>;
  log: GateLogger;
  /**
   * The whole gate's time for one call, from the hook's start to letting the call run: shorter
   * than the time OpenClaw gives the hook, so the gate never claims a token or lets a call run
   * after OpenClaw has given up on it (and blocked the call). Default: the approval wait and
   * {@link GATE_MARGIN_MS}.
   */
  deadlineMs?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
  /** Timers for calls whose outcome the host may never report; injectable for tests. */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (timer: unknown) => void;
}

/** Submitting, claiming and redeeming, on top of the wait for people. */
export const GATE_MARGIN_MS = 30_000;

const MM_ID = /^[a-z0-9]{26}$/;
const MAX_SUMMARY = 2000;
const MAX_RECEIPTS = 100;

interface LetRun {
  jobId: number;
  step: string;
  timer: unknown;
  toolCallId: string;
  runId: string | undefined;
}

/**
 * Calls are told apart by run and call id: a model names its tool calls itself (`call_1`),
 * so two runs can use the same id.
 */
const runKey = (runId: string | undefined, toolCallId: string) => `${runId ?? ''}\u0000${toolCallId}`;

const block = (reason: string): GateAnswer => ({ block: true, blockReason: `claw-approvals: ${reason}` });

/** A client error as a reason: its code and the server's words (the client keeps secrets out). */
function why(err: unknown): string {
  if (isClawError(err, 'ERR_UNREACHABLE')) return `the claw-approvals server is unreachable (${err.message})`;
  if (isClawError(err)) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : 'unexpected failure';
}

function receiptsOf(result: unknown): object[] {
  const details = (result as { details?: unknown } | null | undefined)?.details;
  const receipts = (details as { claw_gateway_receipts?: unknown } | null | undefined)?.claw_gateway_receipts;
  if (!Array.isArray(receipts)) return [];
  return receipts
    .filter((r): r is object => typeof r === 'object' && r !== null && !Array.isArray(r))
    .slice(0, MAX_RECEIPTS);
}

/**
 * The plugin's gate. For a tool the pinned policy gates: submit the call as a one-step job,
 * wait for the people in Mattermost, claim and redeem the step's CST, and only then let the
 * call run, with exactly the input that was approved. Anything that goes wrong on the way
 * (a denial, expiry, revocation, no decision in time, the server unreachable, an answer that
 * does not fit) blocks the call with the reason. Tools the policy does not gate pass
 * untouched; tools it does not allow are blocked.
 */
export class ApprovalGate {
  readonly #deps: GateDeps;
  readonly #running = new Map<string, LetRun>();
  #calls = 0;

  constructor(deps: GateDeps) {
    this.#deps = deps;
  }

  async beforeToolCall(event: ToolCallEvent, ctx: ToolCallContext): Promise<GateAnswer> {
    const { config, client, log } = this.#deps;
    // One deadline for the whole gate, from the hook's start; OpenClaw's cancel also ends it.
    const budgetMs = this.#deps.deadlineMs ?? config.approvalTimeoutMs + GATE_MARGIN_MS;
    const now = this.#deps.now ?? Date.now;
    const deadline = now() + budgetMs;
    const timeLeft = () => deadline - now();
    let policy: PinnedPolicy;
    try {
      policy = await this.#deps.policy();
    } catch (err) {
      return block(`cannot read the pinned policy ${config.policyHash}: ${why(err)}`);
    }
    if (!policy.channels.includes(config.channelId))
      return block(`policy ${policy.name} does not govern channel ${config.channelId}`);
    const gate = classifyTool(policy, event.toolName);
    if (gate.gate === 'auto') return undefined;
    if (gate.gate === 'denied') return block(gate.reason);

    const requester = requesterOf(ctx, config);
    if (!requester) return block('no Mattermost requester for this call, and no requesterId is configured');
    const planned = toolCallStep(event.toolName, event.params, { agentId: ctx.agentId });
    if (!planned.ok) return block(planned.reason);
    const { step } = planned;
    const outOfTime = AbortSignal.timeout(Math.max(1, Math.floor(timeLeft())));
    const signal = ctx.abortSignal ? AbortSignal.any([ctx.abortSignal, outOfTime]) : outOfTime;
    const budget = `${Math.round(budgetMs / 1000)} s`;
    if (timeLeft() <= 0) return block(`${event.toolName}: the gate has no time for an approval (${budget})`);

    let job: JobView;
    try {
      // Not cut short by a cancel or the deadline: once sent, the job may exist whatever happens
      // here, and only its answer says which job to close. The client's own timeout bounds it.
      job = await client.submitJob({
        channel_id: config.channelId,
        ...(config.teamId ? { team_id: config.teamId } : {}),
        requester_id: requester,
        steps: [step],
      });
    } catch (err) {
      return block(`${event.toolName} could not be submitted for approval: ${why(err)}`);
    }
    // Cancelled or out of time while it was being submitted: the job it made is closed.
    const gaveUp = () => this.#gaveUp(job, event.toolName, budget, ctx.abortSignal, outOfTime);
    const early = await gaveUp();
    if (early) return early;
    log.info(`claw-approvals: ${event.toolName} submitted as ${job.id}, waiting for approval`);
    if (job.policy.policy_hash_b64u !== config.policyHash) {
      const reason = `channel ${config.channelId} is now governed by policy ${job.policy.policy_hash_b64u}, not the pinned ${config.policyHash}`;
      await this.#close(job.job_id, reason);
      return block(`${job.id}: ${reason}`);
    }

    try {
      const waitMs = Math.max(0, Math.floor(Math.min(config.approvalTimeoutMs, timeLeft())));
      const decision = await client.waitForDecision(job, step.id, { timeoutMs: waitMs, signal });
      if (decision.outcome === 'pending') {
        const reason = `no decision within ${Math.round(waitMs / 1000)} s`;
        await this.#close(job.job_id, reason);
        return block(`${job.id} ${event.toolName}: ${reason}`);
      }
      if (decision.outcome !== 'approved') {
        const reason = decision.step.decision?.reason ?? decision.reason ?? decision.step.status;
        const by = decidersText(decision.by);
        return block(`${job.id} ${event.toolName} ${decision.outcome}${by ? ` by ${by}` : ''}: ${reason}`);
      }
    } catch (err) {
      return (await gaveUp()) ?? block(`${job.id} ${event.toolName}: no decision could be read: ${why(err)}`);
    }

    // Past the deadline OpenClaw may already have given up on the hook and blocked the call:
    // then no token is claimed, and the job says the call did not run.
    if (ctx.abortSignal?.aborted) {
      await this.#close(
        job.job_id,
        'approved, but the tool call was cancelled in OpenClaw before its token was claimed',
      );
      return block(`${job.id}: the tool call was cancelled before its token was claimed`);
    }
    if (timeLeft() <= 0) {
      const reason = `approved after the gate's ${budget} for this call had passed; no token was claimed and the call was blocked`;
      await this.#close(job.job_id, reason);
      return block(`${job.id} ${event.toolName}: ${reason}`);
    }

    let runId: string;
    let eventHash: string;
    try {
      const claimed = await client.claimToken(job, step.id, { signal });
      runId = claimed.run_id;
      eventHash = claimed.event_hash_b64u;
      const redeemed = await client.redeem(claimed.token, policy.audience, { signal });
      if (
        redeemed.job_id !== job.job_id ||
        redeemed.step !== step.id ||
        redeemed.claims.policy_hash_b64u !== config.policyHash
      ) {
        const reason = "the redeemed token is not this step's under the pinned policy";
        await this.#close(job.job_id, reason);
        return block(`${job.id}: ${reason}`);
      }
    } catch (err) {
      const reason = outOfTime.aborted
        ? `approved, but the gate's ${budget} for this call passed while its token was claimed and redeemed; the call was blocked`
        : `approved, but its token could not be used: ${why(err)}`;
      await this.#close(job.job_id, reason);
      return block(`${job.id} ${event.toolName} ${reason}`);
    }
    if (timeLeft() <= 0 || signal.aborted) {
      const reason = `approved and its token redeemed, but past the gate's ${budget} for this call (or cancelled in OpenClaw); the call was blocked`;
      await this.#close(job.job_id, reason);
      return block(`${job.id} ${event.toolName}: ${reason}`);
    }

    const toolCallId = event.toolCallId ?? ctx.toolCallId ?? `claw-${(this.#calls += 1)}`;
    const callRun = event.runId ?? ctx.runId;
    this.#letRun(runKey(callRun, toolCallId), toolCallId, callRun, job.job_id, step.id, {
      run_id: runId,
      event_hash_b64u: eventHash,
    });
    log.info(`claw-approvals: ${job.id} ${event.toolName} approved, token redeemed; the call runs`);
    return { params: event.params };
  }

  /** Reports what a call this gate let run did. Calls it never let run are not its business. */
  async afterToolCall(
    outcome: ToolCallOutcome,
    ctx: { runId?: string | undefined; toolCallId?: string | undefined } = {},
  ): Promise<void> {
    const toolCallId = outcome.toolCallId ?? ctx.toolCallId;
    if (toolCallId === undefined) return;
    const key = runKey(outcome.runId ?? ctx.runId, toolCallId);
    const run = this.#running.get(key);
    if (!run) return;
    this.#forget(key);
    const { client, log } = this.#deps;
    const failed = outcome.error !== undefined;
    const took = outcome.durationMs !== undefined ? ` in ${Math.round(outcome.durationMs)} ms` : '';
    const summary = (
      failed
        ? `OpenClaw: ${outcome.toolName} failed: ${outcome.error}`
        : `OpenClaw: ${outcome.toolName} ran${took}`
    ).slice(0, MAX_SUMMARY);
    try {
      await client.reportResult(run.jobId, run.step, {
        status: failed ? 'failed' : 'succeeded',
        summary: summary.replace(/[\ud800-\udbff]$/, ''),
        ...(failed ? {} : { receipts: receiptsOf(outcome.result) }),
      });
    } catch (err) {
      // The policy wants a gateway's word for success and there is none: say what is known.
      if (isClawError(err, 'ERR_RECEIPTS_REQUIRED')) {
        await this.#close(
          run.jobId,
          `${outcome.toolName} ran; the policy requires a verified gateway receipt for success and none came with the result`,
        );
        return;
      }
      log.warn(`claw-approvals: the result of job:${run.jobId} could not be reported: ${why(err)}`);
    }
  }

  /** Calls let run whose outcome is still unreported (for tests and shutdown). */
  get running(): number {
    return this.#running.size;
  }

  /** Drops the timers (gateway shutdown): the jobs end by their own expiry. */
  stop(): void {
    for (const id of [...this.#running.keys()]) this.#forget(id);
  }

  #letRun(
    key: string,
    toolCallId: string,
    callRun: string | undefined,
    jobId: number,
    step: string,
    binding: { run_id: string; event_hash_b64u: string },
  ) {
    const set = this.#deps.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    const timer = set(() => {
      if (!this.#running.has(key)) return;
      this.#forget(key);
      void this.#close(
        jobId,
        `the tool call was let run; OpenClaw reported no outcome within ${Math.round(this.#deps.config.resultTimeoutMs / 1000)} s`,
      );
    }, this.#deps.config.resultTimeoutMs);
    // A pending report must not keep the gateway process alive.
    (timer as { unref?: () => void }).unref?.();
    this.#running.set(key, { jobId, step, timer, toolCallId, runId: callRun });
    callBindings().set(toolCallId, callRun, { job_id: jobId, step, ...binding });
  }

  #forget(key: string) {
    const run = this.#running.get(key);
    if (!run) return;
    (this.#deps.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>)))(run.timer);
    this.#running.delete(key);
    callBindings().delete(run.toolCallId, run.runId, run.jobId);
  }

  /** Best effort: the call is blocked whether or not the job could be closed. */
  /**
   * When OpenClaw cancelled the call or the gate's deadline passed, closes the job saying which
   * and answers the block; otherwise undefined (the gate goes on).
   */
  async #gaveUp(
    job: JobView,
    toolName: string,
    budget: string,
    cancel: AbortSignal | undefined,
    outOfTime: AbortSignal,
  ): Promise<GateAnswer | undefined> {
    if (cancel?.aborted) {
      await this.#close(job.job_id, 'the tool call was cancelled in OpenClaw');
      return block(`${job.id}: the tool call was cancelled while waiting for approval`);
    }
    if (outOfTime.aborted) {
      const reason = `no decision within the gate's ${budget}; the call was blocked`;
      await this.#close(job.job_id, reason);
      return block(`${job.id} ${toolName}: ${reason}`);
    }
    return undefined;
  }

  async #close(jobId: number, reason: string): Promise<void> {
    try {
      await this.#deps.client.closeJob(jobId, reason.slice(0, 500));
    } catch (err) {
      this.#deps.log.warn(`claw-approvals: job:${jobId} could not be closed: ${why(err)}`);
    }
  }
}

/**
 * Whom the job is for: the Mattermost user who asked, when OpenClaw names one, else the
 * configured requester. Either way that person confirms in the job's thread before any
 * approval counts, so naming someone grants nothing.
 */
export function requesterOf(ctx: ToolCallContext, config: GateConfig): string | undefined {
  const r = ctx.requester;
  if (r?.channel === 'mattermost' && r.senderId !== undefined && MM_ID.test(r.senderId)) return r.senderId;
  return config.requesterId;
}
