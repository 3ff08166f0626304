import { appError } from '../app-error.js';
import type { SandboxApp } from '../app.js';
import type { MmBot } from '../types.js';
import type { Exchange } from './http.js';
import { requireId, route, type Route } from './route.js';

/**
 * api4 getBot: read_others_bots (system admins) may read any bot; everyone else is told the bot
 * does not exist (model.MakeBotNotFoundError), including the bot itself, so "is this token a
 * bot?" is answered by `GET /users/me` (`is_bot`), not here. The owner's read_bots permission
 * is not granted to ordinary users by default, so the sandbox does not model it.
 */
function getBot(ex: Exchange, app: SandboxApp): void {
  const id = requireId(ex, 'bot_user_id');
  const user = app.store.users.get(id);
  const includeDeleted = ex.query('include_deleted') === 'true';
  const visible =
    user?.isBot && (user.deleteAt === 0 || includeDeleted) && app.store.isSystemAdmin(ex.userId);
  if (!user || !visible) throw appError('store.sql_bot.get.missing.app_error', 404);
  const bot: MmBot = {
    user_id: user.id,
    username: user.username,
    owner_id: user.botOwnerId,
    create_at: user.createAt,
    update_at: user.updateAt,
    delete_at: user.deleteAt,
  };
  ex.sendJson(200, bot);
}

export const botRoutes: Route[] = [route('GET', '/api/v4/bots/{bot_user_id}', getBot)];
