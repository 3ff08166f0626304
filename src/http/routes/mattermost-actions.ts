import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { type ButtonClick, decideStep, type DecisionOutcome } from '../../approvals/record-decision.js';
import type { ChatPort } from '../../chat/chat-port.js';
import {
  type ActionClaims,
  signDialogState,
  verifyActionContext,
  verifyDialogState,
} from '../../crypto/action-mac.js';
import type { EngineContext } from '../../jobs/context.js';
import { hasUnsafeText } from '../../jobs/plan.js';
import { ACTIONS_PATH } from '../../presenter/chat-presenter.js';
import { BODY_ERRORS, errorResponses } from '../error-handler.js';
import { requestEngine } from '../request-id.js';

/** Where Mattermost sends a deny dialog's submission, below the server's public URL. */
export const DIALOGS_PATH = '/v1/mattermost/dialogs';

/** A deny dialog's state is good this long after the click that opened it. */
const DIALOG_TTL_MS = 15 * 60_000;
/** The longest reason a deny dialog takes (the phrase's DENY is bounded by the post size). */
const REASON_MAX = 500;

export interface MattermostActionDeps {
  engine: EngineContext;
  /** The HMAC key of button contexts and dialog states. */
  secret: Uint8Array;
  /** `PUBLIC_URL`: the deny dialog is submitted back below it. */
  publicUrl: string;
  /** Opens the deny dialog for the person who clicked. */
  chat: Pick<ChatPort, 'openDialog'>;
}

const MATTERMOST_ID = { type: 'string', pattern: '^[a-z0-9]{26}$' } as const;

/** model.PostActionIntegrationRequest: the fields we read (Mattermost sends a few more). */
const actionBody = {
  type: 'object',
  required: ['user_id', 'post_id', 'channel_id'],
  properties: {
    user_id: MATTERMOST_ID,
    post_id: MATTERMOST_ID,
    channel_id: MATTERMOST_ID,
    team_id: { type: 'string', maxLength: 64 },
    trigger_id: { type: 'string', maxLength: 4096 },
    type: { type: 'string', maxLength: 64 },
    context: { type: 'object', maxProperties: 32 },
  },
} as const;

/** model.SubmitDialogRequest (Mattermost sets `user_id` from the submitter's session). */
const dialogBody = {
  type: 'object',
  required: ['user_id', 'channel_id'],
  properties: {
    type: { type: 'string', maxLength: 64 },
    callback_id: { type: 'string', maxLength: 256 },
    state: { type: 'string', maxLength: 4096 },
    user_id: MATTERMOST_ID,
    channel_id: MATTERMOST_ID,
    team_id: { type: 'string', maxLength: 64 },
    submission: { type: ['object', 'null'], maxProperties: 32 },
    cancelled: { type: 'boolean' },
  },
} as const;

interface ActionRequest {
  user_id: string;
  post_id: string;
  channel_id: string;
  trigger_id?: string;
  context?: Record<string, unknown>;
}

interface DialogRequest {
  state?: string;
  user_id: string;
  channel_id: string;
  submission?: Record<string, unknown> | null;
  cancelled?: boolean;
}

/** model.PostActionIntegrationResponse: only ever an ephemeral answer, never an `update`. */
const ephemeralAnswer = {
  description: 'Shown only to the person who clicked; empty when the deny dialog opened',
  type: 'object',
  additionalProperties: false,
  properties: { ephemeral_text: { type: 'string' } },
} as const;

/** model.SubmitDialogResponse: an error keeps the dialog open and shows it. */
const dialogAnswer = {
  description: 'Empty when the denial was recorded; an error keeps the dialog open and shows it',
  type: 'object',
  additionalProperties: false,
  properties: {
    error: { type: 'string' },
    errors: { type: 'object', additionalProperties: { type: 'string' } },
  },
} as const;

const NOT_VERIFIED =
  'This button could not be verified, so nothing was recorded. Reply in the thread with the phrase the post shows.';

/** What the person who clicked is told, once the decision is committed. */
function answerOf(claims: ActionClaims, o: DecisionOutcome): string {
  const what = `step \`${claims.step}\` of job:${claims.job}`;
  if (!o.accepted) return `Not recorded: ${o.message}.`;
  if (o.code === 'QUORUM_MET') return `✅ Your approval of ${what} completed its quorum; a token was minted.`;
  if (o.code === 'STEP_DENIED') return `❌ You denied ${what}; the job is closed.`;
  return `Your approval of ${what} counts. ${o.message}.`;
}

/**
 * The Mattermost callbacks of the status post's buttons (issue 11 section 2, SPEC section 2
 * rule 6). A click's `context` must carry our MAC over the job, step, plan hash, policy hash,
 * post and action, for the post clicked; the clicker's `user_id` is then a decision like a typed
 * phrase, under every rule of SPEC section 2. The answer comes after the decision committed and
 * is an ephemeral message to the clicker (HTTP 200: anything else makes Mattermost show an error
 * and drop the answer). Deny asks for its reason in a dialog whose `state` is MAC-signed for the
 * person who clicked.
 */
export function mattermostActionRoutes(app: FastifyInstance, deps: MattermostActionDeps): void {
  const { engine, secret } = deps;
  const dialogUrl = `${deps.publicUrl}${DIALOGS_PATH}`;

  // Refused before the handler: a body that is not JSON, too large, or fails the schema.
  const refusals = errorResponses([...BODY_ERRORS, 'ERR_RATE_LIMITED']);

  app.post<{ Body: ActionRequest }>(
    ACTIONS_PATH,
    {
      schema: {
        operationId: 'mattermostAction',
        summary: 'Mattermost calls this when someone clicks Approve or Deny on a status post',
        description:
          "No credential: the MAC in the button's `context` is checked in constant time and binds job, step, " +
          'plan, policy, post and action. A click that fails a check records nothing and is answered 200 with ' +
          'an ephemeral message (Mattermost drops the answer of any other status).',
        tags: ['mattermost'],
        body: actionBody,
        response: { 200: ephemeralAnswer, ...refusals },
      },
    },
    async (req) => {
      const body = req.body;
      const claims = verifyActionContext(secret, body.context);
      if (!claims) {
        req.log.warn(
          { userId: body.user_id, postId: body.post_id },
          'button callback without a valid context',
        );
        return { ephemeral_text: NOT_VERIFIED };
      }
      if (claims.postId !== body.post_id) {
        req.log.warn(
          { userId: body.user_id, postId: body.post_id, jobId: claims.job },
          'button context presented for another post',
        );
        return { ephemeral_text: NOT_VERIFIED };
      }
      if (claims.action === 'deny') return openDenyDialog(req.log, claims, body);
      const button = buttonClick(claims, body.channel_id);
      const outcome = await decided(req.log, () =>
        decideStep(requestEngine(engine, req), {
          kind: 'approve',
          jobId: claims.job,
          step: claims.step,
          userId: body.user_id,
          button,
        }),
      );
      return { ephemeral_text: outcome ? answerOf(claims, outcome) : UNDECIDED };
    },
  );

  async function openDenyDialog(
    log: FastifyBaseLogger,
    claims: ActionClaims,
    body: ActionRequest,
  ): Promise<{ ephemeral_text?: string }> {
    const phrase = `DENY job:${claims.job} step:${claims.step} <reason>`;
    if (!body.trigger_id)
      return { ephemeral_text: `No dialog could be opened; to deny, reply \`${phrase}\`.` };
    const state = signDialogState(secret, {
      ...claims,
      userId: body.user_id,
      expiresAt: engine.clock().getTime() + DIALOG_TTL_MS,
    });
    try {
      await deps.chat.openDialog({
        trigger_id: body.trigger_id,
        url: dialogUrl,
        dialog: {
          callback_id: 'claw-deny',
          title: 'Deny a step',
          introduction_text: `Deny step \`${claims.step}\` of job:${claims.job}. The job closes; your reason is recorded in its proof bundle.`,
          elements: [
            {
              display_name: 'Reason',
              name: 'reason',
              type: 'textarea',
              optional: false,
              max_length: REASON_MAX,
              help_text: 'Why this step must not run.',
            },
          ],
          submit_label: 'Deny',
          notify_on_cancel: false,
          state,
        },
      });
      return {};
    } catch (err) {
      log.warn({ err, jobId: claims.job, step: claims.step }, 'could not open the deny dialog');
      return { ephemeral_text: `The reason dialog could not be opened; to deny, reply \`${phrase}\`.` };
    }
  }

  app.post<{ Body: DialogRequest }>(
    DIALOGS_PATH,
    {
      schema: {
        operationId: 'mattermostDialog',
        summary: 'Mattermost calls this when the deny dialog is submitted',
        description:
          "No credential: the dialog's `state` is MAC-signed for the person who clicked Deny and expires after " +
          "15 minutes. Answered 200 in Mattermost's terms whatever the outcome.",
        tags: ['mattermost'],
        body: dialogBody,
        response: { 200: dialogAnswer, ...refusals },
      },
    },
    async (req) => {
      const body = req.body;
      if (body.cancelled === true) return {};
      const claims = verifyDialogState(secret, body.state);
      if (!claims || claims.action !== 'deny') {
        req.log.warn({ userId: body.user_id }, 'dialog submission without a valid state');
        return { error: 'This dialog could not be verified, so nothing was recorded.' };
      }
      if (claims.userId !== body.user_id) {
        req.log.warn({ userId: body.user_id, jobId: claims.job }, 'dialog state submitted by another user');
        return { error: 'This dialog was opened for someone else; nothing was recorded.' };
      }
      if (engine.clock().getTime() > claims.expiresAt)
        return { error: 'This dialog has expired; nothing was recorded. Click Deny again.' };
      const raw = body.submission?.reason;
      const reason = typeof raw === 'string' ? raw.trim() : '';
      if (reason === '') return { errors: { reason: 'Say why the step is denied.' } };
      if (reason.length > REASON_MAX) return { errors: { reason: `At most ${REASON_MAX} characters.` } };
      // The reason goes into the chain and the thread: one line of plain text, as a typed DENY's.
      if (hasUnsafeText(reason))
        return {
          errors: { reason: 'One line of plain text: no line breaks, control or direction characters.' },
        };
      const button = buttonClick(claims, body.channel_id);
      const outcome = await decided(req.log, () =>
        decideStep(requestEngine(engine, req), {
          kind: 'deny',
          jobId: claims.job,
          step: claims.step,
          userId: body.user_id,
          reason,
          button,
        }),
      );
      if (!outcome) return { error: UNDECIDED };
      return outcome.accepted ? {} : { error: `Not recorded: ${outcome.message}.` };
    },
  );
}

const UNDECIDED =
  'The server could not confirm a decision just now. Look at the status post before trying again.';

/**
 * The decision, or null when it could not be made (the database is away): the person is told so
 * in Mattermost's terms (HTTP 200), not with an error status that Mattermost would only show as
 * a failed action.
 */
async function decided(
  log: FastifyBaseLogger,
  decide: () => Promise<DecisionOutcome>,
): Promise<DecisionOutcome | null> {
  try {
    return await decide();
  } catch (err) {
    log.error({ err }, 'button decision failed');
    return null;
  }
}

/** The click as the engine checks it: what the MAC bound, and the channel the callback names. */
function buttonClick(
  claims: { postId: string; planHash: string; policyHash: string },
  channelId: string,
): ButtonClick {
  return { postId: claims.postId, channelId, planHash: claims.planHash, policyHash: claims.policyHash };
}
