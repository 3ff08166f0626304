import type { SandboxApp } from '../app.js';
import { createCommand, executeCommand } from '../commands.js';
import { openDialog, submitDialog } from '../dialogs.js';
import { doPostAction, type DoPostActionRequest } from '../post-actions.js';
import type { Exchange } from './http.js';
import { requireId, route, type Route } from './route.js';

/** api4 doPostAction decodes the body but only logs a failure: a bad body is an empty request. */
async function actionRequest(ex: Exchange): Promise<DoPostActionRequest> {
  let raw: unknown;
  try {
    raw = JSON.parse(await ex.rawBody());
  } catch {
    return {};
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return {};
  const { selected_option: option, cookie } = raw as Record<string, unknown>;
  return {
    ...(typeof option === 'string' ? { selected_option: option } : {}),
    ...(typeof cookie === 'string' ? { cookie } : {}),
  };
}

async function postAction(ex: Exchange, app: SandboxApp): Promise<void> {
  const postId = requireId(ex, 'post_id');
  const actionId = ex.params.action_id ?? '';
  const request = await actionRequest(ex);
  ex.sendJson(200, await doPostAction(app, ex.userId, postId, actionId, request));
}

async function openDialogRoute(ex: Exchange, app: SandboxApp): Promise<void> {
  openDialog(app, await ex.json('dialog'));
  ex.sendJson(200, { status: 'OK' });
}

async function submitDialogRoute(ex: Exchange, app: SandboxApp): Promise<void> {
  const body = await ex.json('dialog');
  ex.sendJson(200, await submitDialog(app, ex.userId, body));
}

async function createCommandRoute(ex: Exchange, app: SandboxApp): Promise<void> {
  const body = await ex.json('command');
  ex.sendJson(201, createCommand(app, ex.userId, body));
}

async function executeCommandRoute(ex: Exchange, app: SandboxApp): Promise<void> {
  const body = await ex.json('command_args');
  ex.sendJson(200, await executeCommand(app, ex.userId, body));
}

/** api4/integration_action.go InitAction and api4/command.go InitCommand (the routes used). */
export const integrationRoutes: Route[] = [
  route('POST', '/api/v4/posts/{post_id}/actions/{action_id}', postAction),
  route('POST', '/api/v4/actions/dialogs/open', openDialogRoute, false),
  route('POST', '/api/v4/actions/dialogs/submit', submitDialogRoute),
  route('POST', '/api/v4/commands', createCommandRoute),
  route('POST', '/api/v4/commands/execute', executeCommandRoute),
];
