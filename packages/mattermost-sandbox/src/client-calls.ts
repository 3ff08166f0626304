import type { OpenedDialog } from './dialogs.js';
import type { Sandbox } from './sandbox.js';

/**
 * What a person's client does over REST, for tests: click a button, submit a dialog, run a slash
 * command. Each goes through the same routes and checks as a real client's request.
 */

export interface ApiAnswer {
  status: number;
  /** The parsed JSON body (Mattermost's error shape when status >= 400). */
  body: unknown;
}

async function call(sandbox: Sandbox, token: string, path: string, body: unknown): Promise<ApiAnswer> {
  const res = await fetch(`${sandbox.url}/api/v4${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

/** `POST /posts/{post_id}/actions/{action_id}` as the user whose token this is. */
export function clickAction(
  sandbox: Sandbox,
  userToken: string,
  postId: string,
  actionId: string,
  request: { selected_option?: string } = {},
): Promise<ApiAnswer> {
  return call(sandbox, userToken, `/posts/${postId}/actions/${actionId}`, request);
}

/** The dialogs opened for a user so far, oldest first (what their clients were told to show). */
export function openDialogs(sandbox: Sandbox, userId: string): OpenedDialog[] {
  return sandbox.openedDialogs(userId);
}

/** model.SubmitDialogRequest as a client sends it (the server sets `user_id` from the session). */
export interface DialogSubmission {
  url: string;
  channel_id: string;
  team_id: string;
  callback_id?: string;
  state?: string;
  submission?: Record<string, unknown>;
  cancelled?: boolean;
}

/** `POST /actions/dialogs/submit` as the user whose token this is. */
export function submitDialog(
  sandbox: Sandbox,
  userToken: string,
  submission: DialogSubmission,
): Promise<ApiAnswer> {
  return call(sandbox, userToken, '/actions/dialogs/submit', submission);
}

/** `POST /commands/execute` (model.CommandArgs) as the user whose token this is. */
export function executeCommand(
  sandbox: Sandbox,
  userToken: string,
  args: { channel_id: string; command: string; root_id?: string; team_id?: string },
): Promise<ApiAnswer> {
  return call(sandbox, userToken, '/commands/execute', args);
}
