import { decidersText, type Decision, type JobView } from '@claw-approvals/client';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { canonicalJson } from '../crypto/jcs.js';
import { type PlanStep, planHash } from '../jobs/plan.js';
import { awaitDecision, progressReporter } from './await-decision.js';
import type { McpToolDeps } from './deps.js';
import { stepInput, toolCallStep, type ToolInput } from './tool-call-step.js';
import { closeQuietly, failureOf, toolSignal } from './tool-result.js';

/**
 * Claude Code's `--permission-prompt-tool`: it calls the tool with the call it is about to
 * make and reads the first text content as JSON, `{"behavior":"allow","updatedInput":{…}}`
 * or `{"behavior":"deny","message":"…"}`.
 */
export type PermissionAnswer =
  { behavior: 'allow'; updatedInput: ToolInput } | { behavior: 'deny'; message: string };

export interface ToolCall {
  tool_name: string;
  input: ToolInput;
  tool_use_id?: string | undefined;
}

const deny = (message: string): PermissionAnswer => ({ behavior: 'deny', message });

/**
 * Puts one tool call before people as a one-step job (tool = the tool's name, args = its
 * input, so the plan hash pins exactly that input), waits for their decision in the job's
 * thread, and on approval claims and redeems the step's token, so the approval is spent
 * once. A step the channel's policy lets run without a gate is minted with its job and
 * allowed at once; a tool the policy denies, any refusal, a timeout and every failure deny.
 */
export async function decidePermission(
  deps: McpToolDeps,
  call: ToolCall,
  opts: { signal: AbortSignal; progress?: (round: number) => Promise<void> },
): Promise<PermissionAnswer> {
  const made = toolCallStep(call.tool_name, call.input);
  if (!made.ok) return deny(`claw-approvals cannot put this call before approvers: ${made.problem}`);
  if (!deps.channelId || !deps.requesterId)
    return deny('claw-approvals: no channel or requester is configured for permission prompts');
  const step: PlanStep = made.step;
  const hash = planHash([step]);
  let job: JobView;
  try {
    // Not cut short by a withdrawal: once sent, the job may exist whatever happens here, and
    // only its answer says which job to close. The client's own timeout bounds the wait.
    job = await deps.client.submitJob({
      channel_id: deps.channelId,
      requester_id: deps.requesterId,
      ...(deps.teamId ? { team_id: deps.teamId } : {}),
      steps: [step],
    });
  } catch (err) {
    if (opts.signal.aborted) throw err;
    const f = failureOf(err, deps.log);
    return deny(`claw-approvals refused the call (${f.code}): ${f.message}`);
  }
  if (opts.signal.aborted) {
    await closeQuietly(deps, job, 'the permission request was withdrawn or lost');
    throw opts.signal.reason;
  }
  const log = deps.log.child({ jobId: job.job_id, tool: step.tool });
  if (job.plan_hash_b64u !== hash) {
    await closeQuietly(deps, job, 'the recorded plan is not the call that was submitted');
    return deny(`claw-approvals recorded ${job.id} with another plan than this call; nothing was approved`);
  }
  log.info({ step: step.id, gate: job.steps[0]?.gate }, 'permission prompt waiting for a decision');

  let d: Decision;
  try {
    d = await awaitDecision(deps.client, job, step.id, {
      deadline: Date.now() + deps.permissionTimeoutSeconds * 1000,
      signal: opts.signal,
      progress: opts.progress ?? (async () => {}),
    });
  } catch (err) {
    // Withdrawn by the caller, or the server stopped answering: nobody is waiting any more.
    await closeQuietly(deps, job, 'the permission request was withdrawn or lost');
    if (opts.signal.aborted) throw err;
    const f = failureOf(err, deps.log);
    return deny(`claw-approvals could not learn the decision on ${job.id} (${f.code}): ${f.message}`);
  }
  if (d.outcome === 'pending') {
    await closeQuietly(deps, job, `no decision within ${deps.permissionTimeoutSeconds} s`);
    log.info('permission prompt timed out');
    return deny(`No decision on ${job.id} within ${deps.permissionTimeoutSeconds} s; the request is closed.`);
  }
  if (d.outcome !== 'approved') {
    log.info({ outcome: d.outcome }, 'permission prompt denied');
    const by = decidersText(d.by);
    const why = d.step.decision?.reason ?? d.reason;
    return deny(`Not approved: ${job.id} is ${d.outcome}${by ? ` by ${by}` : ''}${why ? ` (${why})` : ''}`);
  }
  return spend(deps, job, step, hash, call.input, d);
}

/** Claims and redeems the approved step's token, then answers the input it was minted for. */
async function spend(
  deps: McpToolDeps,
  job: JobView,
  step: PlanStep,
  hash: string,
  asked: ToolInput,
  d: Decision,
): Promise<PermissionAnswer> {
  if (d.step.status !== 'approved' || !d.step.token?.claimable)
    return deny(`${job.id} step ${step.id} is ${d.step.status}; its token cannot be claimed`);
  let approved: ToolInput;
  try {
    // What people approved is what the server holds: the step's args, under the plan hash.
    const held: PlanStep = { id: d.step.id, tool: d.step.tool, args: d.step.args, summary: d.step.summary };
    if (d.job.plan_hash_b64u !== hash || planHash([held]) !== hash) throw new Error('plan hash differs');
    approved = stepInput(d.step.args);
    if (canonicalJson(approved) !== canonicalJson(asked)) throw new Error('input differs');
  } catch {
    await closeQuietly(deps, job, 'the approved step is not the call that was submitted');
    return deny(`${job.id} holds another call than this one; nothing was allowed`);
  }
  try {
    const claimed = await deps.client.claimToken(job, step.id);
    const redeemed = await deps.client.redeem(claimed.token);
    const scope = new Set(redeemed.claims.scope);
    if (
      redeemed.job_id !== job.job_id ||
      redeemed.step !== step.id ||
      redeemed.claims.mission_id !== job.id ||
      !scope.has(`plan:${hash}`) ||
      !scope.has(`tool:${step.tool}`) ||
      !scope.has(`step:${step.id}`)
    )
      return deny(`the token redeemed for ${job.id} is not bound to this call; nothing was allowed`);
  } catch (err) {
    const f = failureOf(err, deps.log);
    return deny(`claw-approvals could not spend the approval of ${job.id} (${f.code}): ${f.message}`);
  }
  deps.log.info({ jobId: job.job_id, tool: step.tool }, 'permission prompt allowed the call');
  return { behavior: 'allow', updatedInput: approved };
}

export const PERMISSION_PROMPT_TOOL = 'permission_prompt';

export function registerPermissionPrompt(server: McpServer, deps: McpToolDeps): void {
  server.registerTool(
    PERMISSION_PROMPT_TOOL,
    {
      title: 'Permission prompt (Claude Code)',
      description:
        "For Claude Code's --permission-prompt-tool: puts the tool call before people in Mattermost as a one-step " +
        'job, blocks until they decide (or the configured timeout passes), and answers allow (with exactly the ' +
        'approved input) or deny.',
      inputSchema: {
        tool_name: z.string().describe('The tool the agent wants to call'),
        input: z.record(z.string(), z.unknown()).describe("The tool's input"),
        tool_use_id: z.string().optional().describe('The id of the tool use'),
      },
      annotations: {
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: true,
      },
    },
    async (args, extra): Promise<CallToolResult> => {
      const answer = await decidePermission(deps, args, {
        signal: toolSignal(deps, extra),
        progress: progressReporter(extra, 'waiting for people in Mattermost'),
      }).catch((err: unknown) => {
        if (deps.stopping?.aborted) return deny(`claw-approvals is shutting down; nothing was approved`);
        throw err;
      });
      return { content: [{ type: 'text', text: JSON.stringify(answer) }] };
    },
  );
}
