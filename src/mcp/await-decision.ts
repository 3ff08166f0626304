import type { ClawClient, Decision, JobRef } from '@claw-approvals/client';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';

/** One long-poll round; between rounds progress is reported to a client that asked for it. */
const ROUND_MS = 30_000;

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/**
 * Progress notifications for a request whose client sent a progress token: a client that
 * resets its timeout on progress then waits as long as people take.
 */
export function progressReporter(extra: Extra, message: string): (round: number) => Promise<void> {
  const token = extra._meta?.progressToken;
  if (token === undefined) return async () => {};
  return (round) =>
    extra.sendNotification({
      method: 'notifications/progress',
      params: { progressToken: token, progress: round, message },
    });
}

/** Waits for the step's decision until `deadline` (epoch ms), in rounds, reporting progress between them. */
export async function awaitDecision(
  client: ClawClient,
  job: JobRef,
  step: string,
  opts: { deadline: number; signal: AbortSignal; progress: (round: number) => Promise<void> },
): Promise<Decision> {
  for (let round = 1; ; round += 1) {
    const left = Math.max(0, opts.deadline - Date.now());
    const d = await client.waitForDecision(job, step, {
      timeoutMs: Math.min(left, ROUND_MS),
      signal: opts.signal,
    });
    if (d.outcome !== 'pending' || Date.now() >= opts.deadline) return d;
    await opts.progress(round);
  }
}
