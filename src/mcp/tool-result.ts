import { isClawError, type JobView } from '@claw-approvals/client';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { FastifyBaseLogger as Logger } from 'fastify';
import type { McpToolDeps } from './deps.js';

/** A tool's answer: the same object as JSON text (for models) and as structured content. */
export function toolAnswer(value: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(value, null, 2) }], structuredContent: value };
}

/** A tool's own refusal of its input (what the schema cannot say), answered as ERR_VALIDATION. */
export class ToolInputError extends Error {
  override readonly name = 'ToolInputError';
}

/** What a failed call tells the caller: the API's code and message, or one of ours. */
export interface ToolFailure {
  code: string;
  message: string;
}

/**
 * The failure as the caller may see it. The client's errors carry the API's code and a
 * message the client has already scrubbed of the key and token; a ToolInputError is the
 * caller's mistake; anything else (the client's own argument checks included: the schemas
 * come first) is ours and is logged, not shown.
 */
export function failureOf(err: unknown, log: Logger): ToolFailure {
  if (isClawError(err)) return { code: err.code, message: err.message };
  if (err instanceof ToolInputError) return { code: 'ERR_VALIDATION', message: err.message };
  log.error({ err }, 'MCP tool failed');
  return { code: 'ERR_INTERNAL', message: 'the tool failed; the server log says why' };
}

/** A tool error as MCP carries it: `isError`, the code first in the text. */
export function toolError(failure: ToolFailure): CallToolResult {
  return {
    isError: true,
    content: [{ type: 'text', text: `${failure.code}: ${failure.message}` }],
    structuredContent: { error: failure },
  };
}

/** What shutting down answers: the agent should ask again (another replica, or after the restart). */
export const SHUTTING_DOWN: ToolFailure = {
  code: 'ERR_UNREACHABLE',
  message: 'claw-approvals is shutting down; ask again',
};

/** The signal a tool's work stops on: the caller's cancellation, or the server stopping. */
export function toolSignal(deps: Pick<McpToolDeps, 'stopping'>, extra: { signal: AbortSignal }): AbortSignal {
  return deps.stopping ? AbortSignal.any([extra.signal, deps.stopping]) : extra.signal;
}

/** Runs a tool's body with its signal; any failure becomes a tool error with its code. */
export async function answering(
  deps: Pick<McpToolDeps, 'log' | 'stopping'>,
  extra: { signal: AbortSignal },
  body: (signal: AbortSignal) => Promise<Record<string, unknown>>,
): Promise<CallToolResult> {
  try {
    return toolAnswer(await body(toolSignal(deps, extra)));
  } catch (err) {
    if (deps.stopping?.aborted) return toolError(SHUTTING_DOWN);
    return toolError(failureOf(err, deps.log));
  }
}

/**
 * Closes a job the caller no longer waits for. Already ended (decided meanwhile) is fine; if
 * the server cannot be reached, the job ends by itself at its expiry.
 */
export async function closeQuietly(
  deps: Pick<McpToolDeps, 'client' | 'log'>,
  job: JobView,
  reason: string,
): Promise<void> {
  try {
    await deps.client.closeJob(job, reason);
  } catch (err) {
    if (!isClawError(err, 'ERR_JOB_CLOSED'))
      deps.log.warn({ jobId: job.job_id, code: failureOf(err, deps.log).code }, 'job not closed');
  }
}
