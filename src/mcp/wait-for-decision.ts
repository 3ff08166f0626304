import { type Decision, decidersText } from '@claw-approvals/client';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { type McpToolDeps, threadLink } from './deps.js';
import { jobRef, stepId } from './schemas.js';
import { awaitDecision, progressReporter } from './await-decision.js';
import { answering } from './tool-result.js';

/** The longest one call waits; an agent that wants longer calls again. */
export const MAX_DECISION_WAIT_SECONDS = 3600;

/** A decision as the agent reads it: the outcome, where the step and job stand, and why. */
export function decisionSummary(deps: Pick<McpToolDeps, 'mattermostUrl'>, d: Decision) {
  return {
    job: d.job.id,
    step: d.step.id,
    decision: d.outcome,
    job_status: d.job.status,
    step_status: d.step.status,
    approvals: d.step.approvals,
    required_approvals: d.step.required_approvals,
    // The job's end reason once it ended (e.g. "step post-summary denied by <user id>").
    reason: d.reason ?? null,
    // Who settled the step: the approvals its token was minted on, the denier, the revoker.
    decided_by: d.by,
    decided_by_text: decidersText(d.by),
    decision_reason: d.step.decision?.reason ?? null,
    decided_at: d.step.decision?.at ?? null,
    token_claimable: d.step.token?.claimable ?? false,
    thread: threadLink(deps, d.job.root_post_id),
  };
}

export function registerWaitForDecision(server: McpServer, deps: McpToolDeps): void {
  server.registerTool(
    'wait_for_decision',
    {
      title: 'Wait for a decision',
      description:
        "Wait until people decide a step in the job's Mattermost thread, or until timeout_seconds pass. " +
        'Answers approved (its token can be claimed), denied, expired, revoked, cancelled, or pending (still waiting).',
      inputSchema: {
        job: jobRef,
        step: stepId,
        timeout_seconds: z
          .number()
          .int()
          .min(0)
          .max(MAX_DECISION_WAIT_SECONDS)
          .default(30)
          .describe(
            `Seconds to wait, 0 to look once (at most ${MAX_DECISION_WAIT_SECONDS}). Past about a minute the ` +
              'client must allow it: a progress token, or a longer request timeout',
          ),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args, extra) =>
      answering(deps, extra, async (signal) =>
        decisionSummary(
          deps,
          await awaitDecision(deps.client, args.job, args.step, {
            deadline: Date.now() + args.timeout_seconds * 1000,
            signal,
            progress: progressReporter(extra, 'waiting for people in Mattermost'),
          }),
        ),
      ),
  );
}
