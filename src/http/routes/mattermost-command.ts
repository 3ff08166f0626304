/**
 * `POST /v1/mattermost/command`: the `/claw` slash command, as Mattermost delivers it
 * (server/channels/app/command.go, tryExecuteCustomCommand / DoCommandRequest): a form-encoded
 * POST with `Authorization: Token <command token>`. The answer is a CommandResponse shown only to
 * the person who ran the command (`response_type: ephemeral`).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { handleSlashCommand, type SlashCommandDeps } from '../../commands/handle-slash-command.js';
import { AppError } from '../../errors.js';
import { BODY_ERRORS, errorResponses } from '../error-handler.js';
import { SECURITY } from '../openapi.js';
import { requestEngine } from '../request-id.js';
import type { ApiRateLimiter } from '../rate-limit.js';
import { isCommandToken, presentedToken } from './mattermost-command-token.js';

export const COMMAND_PATH = '/v1/mattermost/command';

/** Commands answered per person per minute unless told otherwise. */
export const DEFAULT_COMMAND_ANSWERS_PER_MINUTE = 10;

export interface CommandRouteDeps extends Omit<SlashCommandDeps, 'answersPerMinute'> {
  /** The command's token (MATTERMOST_COMMAND_TOKEN); null: every request is refused. */
  token: string | null;
  limiter: ApiRateLimiter;
  answersPerMinute?: number;
}

/** A request's form is small: its text is bounded far below this, mentions and names included. */
const FORM_LIMIT = 32 * 1024;

const mattermostId = { type: 'string', pattern: '^[a-z0-9]{26}$' } as const;

/** The fields read (Mattermost sends more: mentions, response_url, channel and team names). */
const commandForm = {
  type: 'object',
  required: ['trigger_id', 'user_id', 'user_name', 'channel_id', 'team_domain', 'command', 'text'],
  properties: {
    token: { type: 'string', maxLength: 128 },
    // model.GenerateTriggerId: standard base64 of the client trigger id, user, time and signature.
    trigger_id: { type: 'string', pattern: '^[A-Za-z0-9+/=]{1,1024}$' },
    user_id: mattermostId,
    user_name: { type: 'string', pattern: '^[a-z0-9._-]{1,64}$' },
    channel_id: mattermostId,
    team_domain: { type: 'string', maxLength: 64 },
    command: { type: 'string', pattern: '^/[\\x21-\\x5f\\x61-\\x7e]{1,128}$' },
    // Bounded by the form; an over-long text is answered, not refused unread.
    text: { type: 'string' },
  },
} as const;

interface CommandForm {
  token?: string;
  trigger_id: string;
  user_id: string;
  user_name: string;
  channel_id: string;
  team_domain: string;
  command: string;
  text: string;
}

/**
 * A form as an object; a repeated field becomes a list (Mattermost repeats only the mention
 * fields), so a repeated field the command reads fails the schema instead of being picked from.
 */
function formFields(body: string): Record<string, string | string[]> {
  const fields: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [key, value] of new URLSearchParams(body)) {
    const had = fields[key];
    fields[key] = had === undefined ? value : [...(Array.isArray(had) ? had : [had]), value];
  }
  return fields;
}

export function mattermostCommandRoutes(app: FastifyInstance, deps: CommandRouteDeps): void {
  const token = deps.token;
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: FORM_LIMIT },
    (_req, body, done) => done(null, formFields(body as string)),
  );

  // Before the body is read: a request without the command's token changes nothing and costs
  // its address a failed attempt.
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    deps.limiter.attempt(req, reply);
    if (token === null) {
      throw new AppError(
        'ERR_UNAUTHENTICATED',
        'the slash command is not configured on this server: set MATTERMOST_COMMAND_TOKEN to its token',
      );
    }
    const presented = presentedToken(req.headers.authorization);
    if (presented === null || !isCommandToken(presented, token))
      throw new AppError('ERR_UNAUTHENTICATED', 'Authorization: Token <the command token> is required');
    deps.limiter.authenticated(req, reply, 'mattermost-command');
  });

  app.post<{ Body: CommandForm }>(
    COMMAND_PATH,
    {
      schema: {
        operationId: 'mattermostCommand',
        summary: 'Mattermost calls this for the `/claw` slash command',
        description:
          'A form-encoded POST as Mattermost sends it, with `Authorization: Token <command token>` (checked before ' +
          "the body is read; the form's `token`, when present, must be the same). Answered ephemerally.",
        tags: ['mattermost'],
        security: SECURITY.commandToken,
        consumes: ['application/x-www-form-urlencoded'],
        body: commandForm,
        response: {
          200: {
            description: 'A CommandResponse shown only to the person who ran the command',
            type: 'object',
            additionalProperties: false,
            required: ['response_type', 'text'],
            properties: { response_type: { type: 'string', enum: ['ephemeral'] }, text: { type: 'string' } },
          },
          ...errorResponses([...BODY_ERRORS, 'ERR_UNAUTHENTICATED', 'ERR_RATE_LIMITED']),
        },
      },
    },
    async (req, reply) => {
      const form = req.body;
      // Mattermost also sends the token in the form: when present, it must be the same one.
      if (form.token !== undefined && !isCommandToken(form.token, token!))
        throw new AppError('ERR_UNAUTHENTICATED', 'the token in the form is not the command token');
      const { text } = await handleSlashCommand(
        {
          engine: requestEngine(deps.engine, req),
          chat: deps.chat,
          mattermostUrl: deps.mattermostUrl,
          answersPerMinute: deps.answersPerMinute ?? DEFAULT_COMMAND_ANSWERS_PER_MINUTE,
        },
        {
          triggerId: form.trigger_id,
          userId: form.user_id,
          userName: form.user_name,
          channelId: form.channel_id,
          teamDomain: form.team_domain,
          trigger: form.command,
          text: form.text,
        },
      );
      reply.header('cache-control', 'no-store');
      return { response_type: 'ephemeral' as const, text };
    },
  );
}
