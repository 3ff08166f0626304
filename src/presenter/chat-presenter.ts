import type { Db } from '../db/database.js';
import type { JobRow } from '../db/schema.js';
import {
  enqueuePost,
  enqueuePostMarkingStale,
  markStatusStale,
  recordStatusQueued,
  statusPostKey,
} from '../chat/outbox.js';
import type { StatusRenderer } from '../chat/outbox-delivery.js';
import { signActionContext } from '../crypto/action-mac.js';
import type { EngineContext } from '../jobs/context.js';
import type { JobEvent, JobEventSink } from '../jobs/job-events.js';
import { getVerifiedApprovalPolicy } from '../policy/registry.js';
import type { TrustCheck } from '../tokens/key-ring.js';
import {
  confirmationWithdrawnMessage,
  endedMessage,
  mintedMessage,
  withdrawnMessage,
  bundleUrl,
} from './messages.js';
import { boardOf, statusBoardMessage, statusButtons } from './status-board.js';

/**
 * Approve and Deny buttons on status posts (issue 11 section 2): on when the server has a public
 * URL Mattermost can call back and an action secret; each job's pinned policy says whether it
 * takes them (`execution.approval_methods`).
 */
export interface ButtonSettings {
  /** The HMAC key of button contexts (`crypto/action-secret.ts`). */
  secret: Uint8Array;
  /** `${PUBLIC_URL}/v1/mattermost/actions`. */
  callbackUrl: string;
  /** Checks the signer of the pinned policy that is read to decide. */
  trusts: TrustCheck;
}

/** Where Mattermost sends clicks on the bot's buttons, below the server's public URL. */
export const ACTIONS_PATH = '/v1/mattermost/actions';

/** Whether the job's pinned, verified policy lets its steps be decided by button. */
async function takesButtons(db: Db, policyHash: string, trusts: TrustCheck): Promise<boolean> {
  try {
    const policy = await getVerifiedApprovalPolicy(db, policyHash, trusts);
    return (policy.execution.approval_methods ?? []).includes('button');
  } catch {
    // A policy that cannot be verified shows no buttons; the phrase (and its refusal) remain.
    return false;
  }
}

/** The outbox key of the post that says a job ended (with its bundle). */
export const endedPostKey = (jobId: number) => `job:${jobId}:ended`;

/**
 * Where a job's thread replies go, or null for a job without a channel. A job requested in chat
 * lives in the requester's thread; an agent's job in the thread its plan post starts (until that
 * post is delivered, replies queue behind it at the top of the channel and delivery moves them).
 */
function thread(job: JobRow): { channelId: string; rootId: string | null } | null {
  if (job.channel_id === null) return null;
  return { channelId: job.channel_id, rootId: job.root_post_id };
}

/**
 * A job's status post as it reads now (the plan post, edited as the job moves). With `buttons`
 * (and the post's id, which their MAC binds), gated steps awaiting approval get Approve and Deny
 * buttons when the job's policy takes them.
 */
export async function renderStatusPost(
  db: Db,
  jobId: number,
  publicUrl: string | null,
  buttons?: ButtonSettings & { postId: string },
): Promise<{ message: string; props: Record<string, unknown> } | null> {
  // The chain and the job's row in one statement, so from one snapshot: an end the chain holds
  // comes with its bundle (both are written by the transaction that appends job_ended). A job's
  // row and its job_created event are written by one transaction: no rows, no job.
  const chain = await db
    .selectFrom('jobs as j')
    .innerJoin('job_events as e', 'e.job_id', 'j.id')
    .select(['e.event_type', 'e.payload', 'j.bundle_id', 'j.plan_hash_b64u', 'j.policy_hash_b64u'])
    .where('j.id', '=', jobId)
    .orderBy('e.seq')
    .execute();
  const job = chain[0];
  if (!job) return null;
  const board = boardOf(jobId, chain, job.bundle_id);
  if (!board) return null;
  const attachments =
    buttons && (await takesButtons(db, job.policy_hash_b64u, buttons.trusts))
      ? statusButtons(board, buttons.postId, buttons.callbackUrl, (claims) =>
          signActionContext(buttons.secret, claims),
        )
      : [];
  return {
    message: statusBoardMessage(board, publicUrl, attachments.length > 0),
    props: {
      claw_job_id: `job:${jobId}`,
      claw_plan_hash: job.plan_hash_b64u,
      claw_policy_hash: job.policy_hash_b64u,
      ...(board.ended ? { claw_job_status: board.ended.status } : {}),
      ...(attachments.length > 0 ? { attachments } : {}),
    },
  };
}

/**
 * The renderer outbox delivery edits status posts with: the engine's presenter's, so its buttons
 * (if any) are signed for the post being edited.
 */
export function statusRendererOf(engine: EngineContext): StatusRenderer {
  const publicUrl = engine.publicUrl ?? null;
  const buttons = engine.events instanceof ChatPresenter ? engine.events.buttons : null;
  return (db, jobId, postId) =>
    renderStatusPost(db, jobId, publicUrl, buttons ? { ...buttons, postId } : undefined);
}

/**
 * The chat presenter: turns the engine's events into what people see in Mattermost, written to
 * the outbox in the engine's own transaction. The job's status post is re-rendered after every
 * event; a thread reply is added only where a person needs a notification (the mint, an approval
 * that stopped counting, a withdrawn confirmation, the final outcome). Whatever caused the change
 * (a chat approval, the agent API, the expiry sweep, another replica), it is said exactly once.
 */
export class ChatPresenter implements JobEventSink {
  readonly buttons: ButtonSettings | null;

  constructor(private readonly opts: { publicUrl: string | null; buttons?: ButtonSettings | null }) {
    this.buttons = opts.buttons ?? null;
  }

  async publish(trx: Db, event: JobEvent, at: Date): Promise<void> {
    const t = thread(event.job);
    if (!t) return;
    const job = event.job;
    const status = { ...job, channel_id: t.channelId };
    // A reply and the status post's re-arming, in one statement.
    const reply = (key: string, message: string, props: Record<string, string> = {}) =>
      enqueuePostMarkingStale(
        trx,
        { key, jobId: job.id, ...t, message, props: { claw_job_id: `job:${job.id}`, ...props } },
        status,
        at,
      );
    switch (event.type) {
      case 'job_created': {
        const post = await renderStatusPost(trx, job.id, this.opts.publicUrl);
        if (!post) return;
        await enqueuePost(
          trx,
          {
            key: statusPostKey(job),
            jobId: job.id,
            channelId: t.channelId,
            // A chat job's plan answers the request in its thread; an agent's starts its own.
            rootId: job.origin === 'mattermost' ? job.root_post_id : null,
            message: post.message,
            props: post.props as Record<string, string>,
          },
          at,
        );
        // Buttons carry the post's id in their MAC: they come with the first edit after it exists.
        if (this.buttons && (await takesButtons(trx, job.policy_hash_b64u, this.buttons.trusts)))
          await markStatusStale(trx, status, at);
        else await recordStatusQueued(trx, status, at, post);
        return;
      }
      case 'token_minted':
        return reply(`job:${job.id}:minted:${event.token.step}`, mintedMessage(job.id, event.token), {
          claw_cst_jti: event.token.jti,
        });
      case 'approval_withdrawn':
        return reply(
          `withdrawn:${event.postId}`,
          withdrawnMessage(job.id, event.step, event.userId, event.why),
        );
      case 'confirmation_withdrawn':
        return reply(
          `unconfirmed:${event.decisionId}`,
          confirmationWithdrawnMessage(job.id, event.userId, event.why),
        );
      case 'job_ended': {
        const url = bundleUrl(this.opts.publicUrl, event.ended.bundleId);
        return reply(
          endedPostKey(job.id),
          endedMessage(event.ended, this.opts.publicUrl, event.gatewaySigners),
          {
            claw_bundle_id: event.ended.bundleId,
            claw_job_status: event.ended.status,
            ...(url ? { claw_bundle_url: url } : {}),
          },
        );
      }
      default:
        // Any other change (progress, a step finished, the kill switch) shows on the status post only.
        return markStatusStale(trx, status, at);
    }
  }
}
