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

/** `/users/{user_id}` → a RegExp with named groups, using gorilla/mux's segment patterns. */
export function route(method: string, path: string, handle: Handler, session = true): Route {
  const source = path.replace(/\{(\w+)\}/g, (_m, name: string) =>
    name === 'username' ? `(?<${name}>[A-Za-z0-9_.\\-]+)` : `(?<${name}>[A-Za-z0-9]+)`,
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
