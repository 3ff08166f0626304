import type { Db } from '../db/database.js';
import type { JobRow } from '../db/schema.js';
import type { JobEnded } from '../jobs/end-job.js';
import {
  bundleUrl,
  endedMessage,
  mintedMessage,
  planMessage,
  type PlanPostInput,
  stepResultMessage,
} from '../bot/messages.js';
import type { MintedToken } from '../tokens/mint-step-token.js';
import { enqueuePost } from './outbox.js';

/**
 * What a Mattermost job's thread is told when the engine changes it, written to the outbox
 * in the engine's own transaction: a token minted, a step reported, the job ended. Whatever
 * caused the change (a chat approval, the agent API, the expiry sweep, another replica),
 * the thread hears about it exactly once. API jobs have no thread and are not announced.
 */
function thread(job: JobRow): { channelId: string; rootId: string | null } | null {
  if (job.channel_id === null) return null;
  if (job.origin === 'mattermost')
    return job.root_post_id ? { channelId: job.channel_id, rootId: job.root_post_id } : null;
  // An agent's job: its thread is the plan post, once delivered. Until then its announcements
  // queue behind the plan at the top of the channel, and delivery moves them into the thread.
  return job.submitted_by !== null ? { channelId: job.channel_id, rootId: job.root_post_id } : null;
}

/** The outbox key of the post that says a job ended (with its bundle). */
export const endedPostKey = (jobId: number) => `job:${jobId}:ended`;

/** The outbox key of an agent-submitted job's plan post: its delivery binds the job to the thread. */
export const planPostKey = (jobId: number) => `job:${jobId}:plan`;

/**
 * An agent-submitted job's plan, as a new root post in the job's channel (SPEC section 1: every
 * job has a thread). Written in the creating transaction; delivery binds the job to the post.
 */
export async function announcePlan(
  trx: Db,
  job: JobRow,
  created: PlanPostInput,
  publicUrl: string | null,
  at: Date,
): Promise<void> {
  if (job.channel_id === null) return;
  await enqueuePost(
    trx,
    {
      key: planPostKey(job.id),
      jobId: job.id,
      channelId: job.channel_id,
      rootId: null,
      message: planMessage(created, publicUrl),
      props: {
        claw_job_id: `job:${job.id}`,
        claw_plan_hash: created.planHash,
        claw_policy_hash: created.policyHash,
      },
    },
    at,
  );
}

export async function announceMinted(trx: Db, job: JobRow, token: MintedToken, at: Date): Promise<void> {
  const t = thread(job);
  // Steps minted as the job is created are listed in the plan post, which comes after.
  if (!t || job.created_at.getTime() === at.getTime()) return;
  await enqueuePost(
    trx,
    {
      key: `job:${job.id}:minted:${token.step}`,
      jobId: job.id,
      ...t,
      message: mintedMessage(job.id, token),
      props: { claw_job_id: `job:${job.id}`, claw_cst_jti: token.jti },
    },
    at,
  );
}

export async function announceStepResult(
  trx: Db,
  job: JobRow,
  step: string,
  status: string,
  summary: string,
  at: Date,
): Promise<void> {
  const t = thread(job);
  if (!t) return;
  await enqueuePost(
    trx,
    {
      key: `job:${job.id}:result:${step}`,
      jobId: job.id,
      ...t,
      message: stepResultMessage(job.id, step, status, summary),
      props: { claw_job_id: `job:${job.id}` },
    },
    at,
  );
}

export async function announceEnded(
  trx: Db,
  job: JobRow,
  ended: JobEnded,
  publicUrl: string | null,
  at: Date,
  gatewaySigners: readonly string[] = [],
): Promise<void> {
  const t = thread(job);
  if (!t) return;
  const url = bundleUrl(publicUrl, ended.bundleId);
  await enqueuePost(
    trx,
    {
      key: endedPostKey(job.id),
      jobId: job.id,
      ...t,
      message: endedMessage(ended, publicUrl, gatewaySigners),
      props: {
        claw_job_id: `job:${job.id}`,
        claw_bundle_id: ended.bundleId,
        claw_job_status: ended.status,
        ...(url ? { claw_bundle_url: url } : {}),
      },
    },
    at,
  );
}
