/**
 * Mattermost's error shape (model.AppError): `{id, message, detailed_error, request_id,
 * status_code}`. `request_id` and `status_code` are `omitempty`, and so is `is_oauth`, which
 * therefore never appears for ordinary errors. `detailed_error` is wiped unless the server runs
 * in developer mode (web/handlers.go handleContextError), so it is always "" here.
 */
export class AppError extends Error {
  constructor(
    readonly id: string,
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export interface AppErrorBody {
  id: string;
  message: string;
  detailed_error: string;
  request_id?: string;
  status_code: number;
}

export function appErrorBody(err: AppError, requestId?: string): AppErrorBody {
  return {
    id: err.id,
    message: err.message,
    detailed_error: '',
    ...(requestId === undefined ? {} : { request_id: requestId }),
    status_code: err.statusCode,
  };
}

/** English translations from server/i18n/en.json for the ids the sandbox raises. */
const MESSAGES: Record<string, string> = {
  'api.context.session_expired.app_error': 'Invalid or expired session, please login again.',
  'api.context.token_provided.app_error': 'Session is not OAuth but token was provided in the query string.',
  'api.context.permissions.app_error': 'You do not have the appropriate permissions.',
  'api.context.404.app_error': 'Sorry, we could not find the page.',
  'api.context.invalid_body_param.app_error': 'Invalid or missing {{.Name}} in request body.',
  'api.context.invalid_param.app_error': 'Invalid {{.Name}} parameter.',
  'api.context.invalid_url_param.app_error': 'Invalid or missing {{.Name}} parameter in request URL.',
  'api.context.server_busy.app_error': 'Server is busy, non-critical services are temporarily unavailable.',
  'api.reaction.save_reaction.invalid.app_error': 'Reaction is not valid.',
  'api.reaction.save_reaction.user_id.app_error': 'You cannot save reaction for the other user.',
  'api.post.create_post.root_id.app_error': 'Invalid RootId parameter.',
  'api.post.create_post.channel_root_id.app_error': 'Invalid ChannelId for RootId parameter.',
  'api.post.deduplicate_create_post.pending':
    'Rejected post since another client is making the same request.',
  'api.post.update_post.permissions_details.app_error': 'Already deleted id={{.PostId}}.',
  'app.post.get.app_error': 'Unable to get post.',
  'app.channel.get.existing.app_error': 'Unable to find the existing channel.',
  'app.channel.get_member.missing.app_error': 'No channel member found for that user ID and channel ID.',
  'app.team.get.find.app_error': 'Unable to find the existing team.',
  'app.user.missing_account.const': 'Unable to find the user.',
  'app.user.get_by_username.app_error':
    'Unable to find an existing account matching your username for this team. This team may require an invite from the team owner to join.',
  'api.context.request_body_too_large.app_error': 'Unable to process request. Request body too large.',
  'app.group.no_rows': 'No matching group found.',
  'model.post.is_valid.message_length.app_error':
    'Message property is longer than the maximum permitted length of {{.MaxLength}} characters.',
  'model.post.is_valid.type.app_error': 'Invalid type.',
  'web.incoming_webhook.invalid.app_error': 'Invalid webhook.',
  'web.incoming_webhook.parse.app_error': 'Unable to parse incoming data.',
  'web.incoming_webhook.text.app_error': 'No text specified.',
  'web.incoming_webhook.channel.app_error': "Couldn't find the channel.",
  'api.web_socket_router.no_action.app_error': 'No websocket action.',
  'api.web_socket_router.bad_seq.app_error': 'Invalid sequence for WebSocket message.',
  'api.web_socket_router.bad_action.app_error': 'Invalid websocket action.',
  'api.web_socket_router.not_authenticated.app_error': 'Not authenticated.',
};

export function appError(
  id: string,
  statusCode: number,
  params: Record<string, string | number> = {},
): AppError {
  const template = MESSAGES[id] ?? id;
  const message = template.replace(/\{\{\.(\w+)\}\}/g, (_m, key: string) => String(params[key] ?? ''));
  return new AppError(id, message, statusCode);
}

export const permissionError = (): AppError => appError('api.context.permissions.app_error', 403);
export const invalidUrlParam = (name: string): AppError =>
  appError('api.context.invalid_url_param.app_error', 400, { Name: name });
export const invalidBodyParam = (name: string): AppError =>
  appError('api.context.invalid_body_param.app_error', 400, { Name: name });
export const invalidParam = (name: string): AppError =>
  appError('api.context.invalid_param.app_error', 400, { Name: name });
