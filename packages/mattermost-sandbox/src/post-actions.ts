import { appError, permissionError } from './app-error.js';
import type { SandboxApp } from './app.js';
import { findAction } from './attachments.js';
import { parseSlackLinks, sendOutgoing, Unreachable } from './outgoing.js';

/** model.PostActionRetainPropKeys: an update from the integration cannot change these. */
const RETAIN_PROP_KEYS = ['from_webhook', 'override_username', 'override_icon_url'];

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** model.DoPostActionRequest, the body of a click (decoding errors are only logged by api4). */
export interface DoPostActionRequest {
  selected_option?: string;
  cookie?: string;
}

/** Every failure to reach or understand the integration is this one 400. */
const integrationError = () => appError('api.post.do_action.action_integration.app_error', 400);

/** The `update` of a PostActionIntegrationResponse, decoded as model.Post (wrong types fail). */
interface ActionUpdate {
  message: string;
  props: Record<string, unknown> | null;
  fileIds: string[];
}

interface ActionResponse {
  update: ActionUpdate | null;
  ephemeralText: string;
  skipSlackParsing: boolean;
}

/** json.Unmarshal into model.PostActionIntegrationResponse; an empty body is an empty answer. */
function decodeResponse(body: string): ActionResponse {
  const empty: ActionResponse = { update: null, ephemeralText: '', skipSlackParsing: false };
  if (body.length === 0) return empty;
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    throw integrationError();
  }
  if (raw === null) return empty;
  if (!isRecord(raw)) throw integrationError();
  const { update, ephemeral_text: text, skip_slack_parsing: skip } = raw;
  if (text !== undefined && text !== null && typeof text !== 'string') throw integrationError();
  if (skip !== undefined && skip !== null && typeof skip !== 'boolean') throw integrationError();
  let decoded: ActionUpdate | null = null;
  if (update !== undefined && update !== null) {
    if (!isRecord(update)) throw integrationError();
    const { message, props, file_ids: fileIds } = update;
    if (message !== undefined && message !== null && typeof message !== 'string') throw integrationError();
    if (props !== undefined && props !== null && !isRecord(props)) throw integrationError();
    if (
      fileIds !== undefined &&
      fileIds !== null &&
      !(Array.isArray(fileIds) && fileIds.every((f) => typeof f === 'string'))
    ) {
      throw integrationError();
    }
    decoded = {
      message: typeof message === 'string' ? message : '',
      props: isRecord(props) ? props : null,
      fileIds: Array.isArray(fileIds) ? (fileIds as string[]) : [],
    };
  }
  return {
    update: decoded,
    ephemeralText: typeof text === 'string' ? text : '',
    skipSlackParsing: skip === true,
  };
}

/**
 * api4 doPostAction → App.DoPostActionWithCookie for a post in the database.
 *
 * The clicker needs read_channel_content on the post's channel (a member, or a system admin).
 * The action must exist and have an integration (else 404 `api.post.do_action.action_id`). The
 * server POSTs model.PostActionIntegrationRequest to the integration URL with a freshly signed
 * trigger id and the action's private `context`; anything but HTTP 200, an unreachable URL or a
 * body that is not a PostActionIntegrationResponse is a 400 `action_integration` error. An
 * `update` replaces the post as App.UpdatePost(safeUpdate=false) does, keeping the original props
 * when it has none (else the retained keys), and the original pin and reactions; `ephemeral_text`
 * reaches the clicker only, in the thread. Answers `{status: "OK", trigger_id}` with the client
 * trigger id. Action cookies (AddPostActionCookies) are not issued by the sandbox, so a request
 * that carries one fails as an undecryptable cookie does.
 */
export async function doPostAction(
  app: SandboxApp,
  userId: string,
  postId: string,
  actionId: string,
  request: DoPostActionRequest,
): Promise<{ status: 'OK'; trigger_id: string }> {
  const { store } = app;
  if (request.cookie) throw integrationError();
  const located = store.posts.get(postId);
  if (located ? !store.hasChannelPermission(userId, located.channelId) : !store.isSystemAdmin(userId)) {
    throw permissionError();
  }
  const post = app.singlePost(postId);
  const channel = app.channelOrNotFound(post.channelId);
  const action = findAction(post.props, actionId);
  if (!action?.integration) throw appError('api.post.do_action.action_id.app_error', 404);
  const user = store.users.get(userId);
  if (!user) throw appError('app.user.missing_account.const', 404);
  const team = channel.team_id === '' ? undefined : store.teams.get(channel.team_id);
  if (channel.team_id !== '' && !team) throw appError('app.team.get.find.app_error', 404);

  const retain: Record<string, unknown> = {};
  const remove: string[] = [];
  for (const key of RETAIN_PROP_KEYS) {
    if (key in post.props) retain[key] = post.props[key];
    else remove.push(key);
  }
  const original = { props: post.props, isPinned: post.isPinned, hasReactions: post.hasReactions };
  const rootPostId = post.rootId === '' ? post.id : post.rootId;

  let context = action.integration.context ? { ...action.integration.context } : undefined;
  let dataSource = '';
  if (action.type === 'select' && request.selected_option) {
    context = { ...context, selected_option: request.selected_option };
    dataSource = action.dataSource;
  }
  const { clientTriggerId, triggerId } = app.triggers.generate(userId);
  // model.PostActionIntegrationRequest, fields in struct order; `context` is omitempty.
  const upstream = {
    user_id: userId,
    user_name: user.username,
    channel_id: channel.id,
    channel_name: channel.name,
    team_id: channel.team_id,
    team_domain: team?.name ?? '',
    post_id: post.id,
    trigger_id: triggerId,
    type: action.type,
    data_source: dataSource,
    ...(context && Object.keys(context).length > 0 ? { context } : {}),
  };
  const answer = await postToIntegration(action.integration.url, upstream, app.config.outgoingTimeoutMs);
  const response = decodeResponse(answer);

  if (response.update) {
    const props =
      response.update.props === null
        ? original.props
        : Object.fromEntries(
            Object.entries({ ...response.update.props, ...retain }).filter(([key]) => !remove.includes(key)),
          );
    app.updatePost({
      id: post.id,
      message: response.update.message,
      props,
      isPinned: original.isPinned,
      hasReactions: original.hasReactions,
      fileIds: response.update.fileIds,
    });
  }
  if (response.ephemeralText !== '') {
    app.sendEphemeralPost(userId, {
      userId,
      channelId: channel.id,
      rootId: rootPostId,
      message: response.skipSlackParsing ? response.ephemeralText : parseSlackLinks(response.ephemeralText),
      props: retain,
    });
  }
  return { status: 'OK', trigger_id: clientTriggerId };
}

/**
 * App.DoActionRequest: POST the JSON with Content-Type and Accept `application/json`; anything
 * but 200 fails. Plugin URLs (`/plugins/…`) are not modelled and fail like an unreachable URL.
 */
export async function postToIntegration(url: string, body: unknown, timeoutMs: number): Promise<string> {
  try {
    const answer = await sendOutgoing(
      {
        method: 'POST',
        url,
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
      },
      timeoutMs,
    );
    if (answer.status !== 200) throw integrationError();
    return answer.body;
  } catch (err) {
    if (err instanceof Unreachable) throw Object.assign(integrationError(), { cause: err });
    throw err;
  }
}
