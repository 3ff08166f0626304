import { invalidUrlParam } from '../app-error.js';
import type { SandboxApp } from '../app.js';
import { isValidId, isValidUsername } from '../ids.js';
import type { Exchange } from './http.js';

export type Handler = (ex: Exchange, app: SandboxApp) => Promise<void> | void;

export interface Route {
  method: string;
  pattern: RegExp;
  /** APISessionRequired; the others are APIHandler / TrustRequester. */
  session: boolean;
  handle: Handler;
}

/** api4/api.go's segment patterns where they are not `[A-Za-z0-9]+`. */
const SEGMENT: Record<string, string> = {
  username: '[A-Za-z0-9_.\\-]+',
  team_name: '[A-Za-z0-9_-]+',
  channel_name: '[A-Za-z0-9_-]+',
};

/** `/users/{user_id}` → a RegExp with named groups, using gorilla/mux's segment patterns. */
export function route(method: string, path: string, handle: Handler, session = true): Route {
  const source = path.replace(
    /\{(\w+)\}/g,
    (_m, name: string) => `(?<${name}>${SEGMENT[name] ?? '[A-Za-z0-9]+'})`,
  );
  return { method, pattern: new RegExp(`^${source}$`), session, handle };
}

/** Context.RequireXxxId: a malformed id is a 400, `me` is the caller. */
export function requireId(ex: Exchange, name: string): string {
  const value = ex.params[name] ?? '';
  if (name === 'user_id' && value === 'me') return ex.userId;
  if (!isValidId(value)) throw invalidUrlParam(name);
  return value;
}

export function requireUsername(ex: Exchange): string {
  const value = (ex.params.username ?? '').toLowerCase();
  if (!isValidUsername(value)) throw invalidUrlParam('username');
  return value;
}

/** Context.RequireTeamName: model.IsValidTeamName (lowercase alphanumerics and dashes, 2 or more). */
export function requireTeamName(ex: Exchange): string {
  const value = ex.params.team_name ?? '';
  if (!/^[a-z0-9]+([a-z\-0-9]+|(__)?)[a-z0-9]+$/.test(value)) throw invalidUrlParam('team_name');
  return value;
}

/** Context.RequireChannelName: model.IsValidChannelIdentifier (DM names `a__b` included). */
export function requireChannelName(ex: Exchange): string {
  const value = ex.params.channel_name ?? '';
  if (!/^[a-z0-9]+([a-z\-_0-9]+|(__)?)[a-z0-9]+$/.test(value)) throw invalidUrlParam('channel_name');
  return value;
}
