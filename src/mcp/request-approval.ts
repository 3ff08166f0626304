import type { JobView, SubmitJobRequest } from '@claw-approvals/client';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { type McpToolDeps, threadLink } from './deps.js';
import { mattermostId, scalar, stepId } from './schemas.js';
import { answering, closeQuietly, ToolInputError } from './tool-result.js';

/** How long `request_approval` waits for the bot to post the plan, so it can link the thread. */
const THREAD_WAIT_MS = 5_000;

const inputSchema = {
  channel: mattermostId('channel')
    .optional()
    .describe('Mattermost channel id whose policy governs the job (default: the configured channel)'),
  requester: mattermostId('requester')
    .optional()
    .describe('Mattermost user id of the person the work is for (default: the configured requester)'),
  team: mattermostId('team').optional().describe('Mattermost team id of the channel (optional)'),
  runbook: z.string().min(1).max(64).optional().describe("A runbook of the channel's policy"),
  params: z.record(z.string(), scalar).optional().describe("The runbook's parameters"),
  steps: z
    .array(
      z.object({
        id: stepId,
        tool: z.string().min(1).max(128),
        args: z.record(z.string(), scalar).optional(),
        summary: z.string().min(1).max(500),
      }),
    )
    .min(1)
    .max(32)
    .optional()
    .describe('Instead of a runbook: the steps, each a tool with its arguments'),
};

/** What the job asks of people, as the agent should read it. */
export function approvalSummary(deps: Pick<McpToolDeps, 'mattermostUrl'>, job: JobView) {
  const gated = job.steps.filter((s) => s.gate === 'gated');
  const waiting = gated.filter((s) => s.status === 'awaiting_approval');
  const next =
    job.status !== 'open'
      ? `${job.id} has ended (${job.status}).`
      : waiting.length === 0
        ? `Nothing awaits approval: claim each step's token (claim_token) when its token is claimable.`
        : [
            job.origin === 'api'
              ? `The requester (Mattermost user ${job.requester_id}) confirms with "CONFIRM ${job.id}" in the job's thread;`
              : 'In the job thread,',
            `approvers reply ${waiting.map((s) => `"APPROVE ${job.id} step:${s.id}"`).join(', ')}.`,
            'Call wait_for_decision for each step.',
          ].join(' ');
  return {
    job: job.id,
    job_id: job.job_id,
    status: job.status,
    policy: job.policy.name,
    plan_hash_b64u: job.plan_hash_b64u,
    expires_at: job.expires_at,
    thread: threadLink(deps, job.root_post_id),
    root_post_id: job.root_post_id,
    gated: gated.map((s) => ({
      step: s.id,
      tool: s.tool,
      summary: s.summary,
      status: s.status,
      required_approvals: s.required_approvals,
      approver_groups: s.approver_groups,
      distinct_groups: s.distinct_groups,
    })),
    auto: job.steps
      .filter((s) => s.gate === 'auto')
      .map((s) => ({ step: s.id, tool: s.tool, status: s.status, claimable: s.token?.claimable ?? false })),
    next,
  };
}

export function registerRequestApproval(server: McpServer, deps: McpToolDeps): void {
  server.registerTool(
    'request_approval',
    {
      title: 'Request approval',
      description:
        "Submit work for approval in Mattermost: a runbook of the channel's policy with its params, or explicit steps. " +
        'Answers the job id, the thread link when known, which steps people must approve and which run without a gate.',
      inputSchema,
      annotations: {
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: false,
      },
    },
    (args, extra) =>
      answering(deps, extra, async (signal) => {
        const channel = args.channel ?? deps.channelId;
        const requester = args.requester ?? deps.requesterId;
        if (!channel) throw new ToolInputError('channel is required (no default channel is configured)');
        if (!requester)
          throw new ToolInputError('requester is required (no default requester is configured)');
        if ((args.runbook === undefined) === (args.steps === undefined))
          throw new ToolInputError('give either runbook (with params) or steps');
        if (args.params !== undefined && args.runbook === undefined)
          throw new ToolInputError('params belong to a runbook');
        const team = args.team ?? deps.teamId;
        const request: SubmitJobRequest = {
          channel_id: channel,
          requester_id: requester,
          ...(team ? { team_id: team } : {}),
          ...(args.runbook !== undefined
            ? { runbook: { name: args.runbook, params: args.params ?? {} } }
            : {}),
          ...(args.steps !== undefined ? { steps: args.steps } : {}),
        };
        // Not cut short by a withdrawal: once sent, the job may exist whatever happens here, and
        // only its answer says which job to close. The client's own timeout bounds the wait.
        const submitted = await deps.client.submitJob(request);
        let job = submitted;
        try {
          signal.throwIfAborted();
          // The bot posts the plan as the job's thread a moment later: wait briefly to link it.
          const deadline = Date.now() + THREAD_WAIT_MS;
          while (job.root_post_id === null && job.status === 'open' && deps.mattermostUrl !== null) {
            const left = Math.floor((deadline - Date.now()) / 1000);
            if (left < 1) break;
            job = await deps.client.getJob(job, {
              waitSeconds: Math.min(left, 2),
              afterVersion: job.version,
              signal,
            });
          }
        } catch (err) {
          // Withdrawn (or the server stopping): nobody will learn of this job, so nobody should approve it.
          if (signal.aborted) await closeQuietly(deps, submitted, 'the request for approval was withdrawn');
          throw err;
        }
        return approvalSummary(deps, job);
      }),
  );
}
