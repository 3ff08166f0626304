import { createHmac, timingSafeEqual } from 'node:crypto';
import { B64U_SHA256, b64u } from './hash.js';
import { canonicalJson } from './jcs.js';

/**
 * What the bot's Approve and Deny buttons carry in their Mattermost `context`, and its deny
 * dialogs in their `state`, authenticated with HMAC-SHA256 under the action secret.
 *
 * Mattermost keeps an action's `context` on the server (it is stripped from every post sent to
 * clients) and hands it back only in the callback of a click on that post, so a valid context
 * proves the request came through a click on a button the bot rendered, for this job, step,
 * plan, policy, post and action. A dialog's `state`, on the other hand, IS sent to the clicker's
 * client, and Mattermost never checks that a submission answers a dialog it opened: the state is
 * signed under another purpose (it can never pass as a button context), names the one user it
 * was opened for, and expires.
 */

export type ButtonAction = 'approve' | 'deny';

/** What a button's MAC binds. */
export interface ActionClaims {
  job: number;
  step: string;
  planHash: string;
  policyHash: string;
  postId: string;
  action: ButtonAction;
}

/** What a deny dialog's MAC binds: the click that opened it, for whom, until when. */
export interface DialogClaims extends ActionClaims {
  userId: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

const ACTION_PURPOSE = 'claw-approvals/button-context/v1';
const DIALOG_PURPOSE = 'claw-approvals/deny-dialog-state/v1';

const JOB = /^[1-9]\d{0,14}$/;
const STEP = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const MATTERMOST_ID = /^[a-z0-9]{26}$/;
const EXPIRES = /^[1-9]\d{0,15}$/;

/** The fields as they travel: strings only, so nothing changes on Mattermost's JSON round trip. */
type Fields = Record<string, string>;

function actionFields(c: ActionClaims): Fields {
  return {
    job: String(c.job),
    step: c.step,
    plan_hash: c.planHash,
    policy_hash: c.policyHash,
    post_id: c.postId,
    action: c.action,
  };
}

function mac(secret: Uint8Array, purpose: string, fields: Fields): string {
  return b64u(
    createHmac('sha256', secret)
      .update(canonicalJson({ purpose, ...fields }))
      .digest(),
  );
}

/** Constant time: the comparison takes as long whichever byte differs. */
function macMatches(secret: Uint8Array, purpose: string, fields: Fields, given: unknown): boolean {
  if (typeof given !== 'string' || !B64U_SHA256.test(given)) return false;
  const expected = Buffer.from(mac(secret, purpose, fields), 'utf8');
  const actual = Buffer.from(given, 'utf8');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** The claims of a context or state whose fields all have their shape; null otherwise. */
function readActionFields(v: Record<string, unknown>): ActionClaims | null {
  const { job, step, plan_hash: planHash, policy_hash: policyHash, post_id: postId, action } = v;
  if (
    typeof job !== 'string' ||
    !JOB.test(job) ||
    typeof step !== 'string' ||
    !STEP.test(step) ||
    typeof planHash !== 'string' ||
    !B64U_SHA256.test(planHash) ||
    typeof policyHash !== 'string' ||
    !B64U_SHA256.test(policyHash) ||
    typeof postId !== 'string' ||
    !MATTERMOST_ID.test(postId) ||
    (action !== 'approve' && action !== 'deny')
  )
    return null;
  return { job: Number(job), step, planHash, policyHash, postId, action };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A button's `context`: the bound fields and their MAC. */
export function signActionContext(secret: Uint8Array, claims: ActionClaims): Fields & { mac: string } {
  const fields = actionFields(claims);
  return { ...fields, mac: mac(secret, ACTION_PURPOSE, fields) };
}

/** The claims of a callback's `context` when its MAC is ours; null for anything else. */
export function verifyActionContext(secret: Uint8Array, context: unknown): ActionClaims | null {
  if (!isRecord(context)) return null;
  const claims = readActionFields(context);
  if (!claims || !macMatches(secret, ACTION_PURPOSE, actionFields(claims), context.mac)) return null;
  return claims;
}

function dialogFields(c: DialogClaims): Fields {
  return { ...actionFields(c), user_id: c.userId, expires_at: String(c.expiresAt) };
}

/** A deny dialog's `state` (a string, as Mattermost carries it). */
export function signDialogState(secret: Uint8Array, claims: DialogClaims): string {
  const fields = dialogFields(claims);
  return JSON.stringify({ ...fields, mac: mac(secret, DIALOG_PURPOSE, fields) });
}

/** The claims of a submitted dialog's `state` when its MAC is ours; null for anything else. */
export function verifyDialogState(secret: Uint8Array, state: unknown): DialogClaims | null {
  if (typeof state !== 'string' || state.length > 2_000) return null;
  let v: unknown;
  try {
    v = JSON.parse(state);
  } catch {
    return null;
  }
  if (!isRecord(v)) return null;
  const claims = readActionFields(v);
  const { user_id: userId, expires_at: expiresAt } = v;
  if (
    !claims ||
    typeof userId !== 'string' ||
    !MATTERMOST_ID.test(userId) ||
    typeof expiresAt !== 'string' ||
    !EXPIRES.test(expiresAt)
  )
    return null;
  const dialog: DialogClaims = { ...claims, userId, expiresAt: Number(expiresAt) };
  return macMatches(secret, DIALOG_PURPOSE, dialogFields(dialog), v.mac) ? dialog : null;
}
