import { timingSafeEqual } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { authenticateAgent } from '../agents/agent-keys.js';
import { sha256 } from '../crypto/hash.js';
import type { Db } from '../db/database.js';
import type { AgentRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { ApiRateLimiter } from './rate-limit.js';

export type Caller = { kind: 'agent'; agent: AgentRow } | { kind: 'admin' };

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route's handler does its read-only work while the caller's key is looked up, and
     * answers only once the caller is authenticated (see `alongsideAuthentication`).
     */
    authenticatesAlongside?: boolean;
  }
}

export interface AuthDeps {
  db: Db;
  adminToken: string | null;
}

function bearer(req: FastifyRequest): string | null {
  const header = req.headers.authorization;
  if (typeof header !== 'string') return null;
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
  return m ? m[1]! : null;
}

/** Constant-time: compares digests, so neither length nor content leaks through timing. */
function isAdminToken(key: string, adminToken: string | null): boolean {
  return adminToken !== null && timingSafeEqual(sha256(key), sha256(adminToken));
}

/** Whether the request carries `Authorization: Bearer <ADMIN_TOKEN>` (never true without one configured). */
export function presentsAdminToken(req: FastifyRequest, adminToken: string | null): boolean {
  const key = bearer(req);
  return key !== null && isAdminToken(key, adminToken);
}

async function resolveCaller(req: FastifyRequest, deps: AuthDeps, allowAdmin: boolean): Promise<Caller> {
  const key = bearer(req);
  if (key === null) throw new AppError('ERR_UNAUTHENTICATED', 'an agent bearer key is required');
  if (allowAdmin && isAdminToken(key, deps.adminToken)) return { kind: 'admin' };
  const agent = await authenticateAgent(deps.db, key);
  if (!agent) throw new AppError('ERR_UNAUTHENTICATED', 'unknown or revoked agent key');
  return { kind: 'agent', agent };
}

/** Callers already authenticated by `authenticationHook`, so a handler does not look them up twice. */
const authenticated = new WeakMap<FastifyRequest, Caller>();
/** Lookups still on their way, of routes that authenticate alongside their work. */
const pending = new WeakMap<FastifyRequest, Promise<Caller>>();
/** Their refusals, once known: the body is no longer read, the work no longer started. */
const refused = new WeakMap<FastifyRequest, unknown>();

/**
 * `onRequest` hook of a scope whose routes all need a caller: authenticates before the body
 * is read and counts the request against the caller's budget, or against the address's
 * failure budget when the credential is missing or wrong.
 *
 * A route configured with `authenticatesAlongside` is not held here when the request presents
 * a bearer key: the lookup goes on while its body is read (see `authenticationBodyGuard`) and
 * its handler works, and the handler (or, for an error before it, the error handler:
 * `authenticationRefusal`) waits for it before answering. The address is charged all the same
 * before the lookup starts, so a refused address gets no further than now, and a request
 * without a key is refused here, before its body, as on every route.
 */
export function authenticationHook(deps: AuthDeps & { allowAdmin: boolean; limiter: ApiRateLimiter }) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    deps.limiter.attempt(req, reply);
    const lookup = resolveCaller(req, deps, deps.allowAdmin).then((caller) => {
      deps.limiter.authenticated(req, reply, caller.kind === 'admin' ? 'admin' : `agent:${caller.agent.id}`);
      authenticated.set(req, caller);
      return caller;
    });
    if (req.routeOptions.config.authenticatesAlongside !== true || bearer(req) === null) {
      await lookup;
      return;
    }
    // Awaited by the handler or the error handler; a request abandoned before either must not
    // leave an unhandled rejection.
    lookup.catch((err: unknown) => refused.set(req, err));
    pending.set(req, lookup);
  };
}

/**
 * `preParsing` hook beside `authenticationHook`: the body of a request whose caller is being
 * looked up alongside is read only while the caller may still be authenticated. The moment the
 * lookup refuses, reading stops and the answer is the refusal, so a caller without a valid key
 * cannot hold a connection open by sending its body slowly.
 */
export function authenticationBodyGuard() {
  return async (req: FastifyRequest, _reply: FastifyReply, payload: Readable): Promise<Readable> => {
    const lookup = pending.get(req);
    if (!lookup) return payload;
    if (refused.has(req)) throw new Error('the body was not read: the caller was refused');
    const guarded = new PassThrough();
    // Whoever reads the body hears its errors; one that arrives when nobody reads it any more
    // (the body refused already, as too large, say) must not become an uncaught exception.
    guarded.on('error', () => undefined);
    payload.on('error', (err) => guarded.destroy(err));
    payload.pipe(guarded);
    lookup.catch(() => {
      // The request stream itself is left alone: destroying it would close the socket the
      // refusal is sent on. The body fails with an error of its own (fastify marks the error a
      // body fails with as a 400); the error handler answers with the refusal itself.
      payload.unpipe(guarded);
      guarded.destroy(new Error('the body was not read: the caller was refused'));
    });
    return guarded;
  };
}

/**
 * Whether a request of a route that authenticates alongside its work was refused: its lookup's
 * error (no key, an unknown key, the caller's budget spent, the database down), or null. The
 * error handler asks first, so an unauthenticated caller is refused as such, never told that
 * its body was malformed.
 */
export async function authenticationRefusal(req: FastifyRequest): Promise<unknown> {
  const lookup = pending.get(req);
  if (!lookup) return null;
  try {
    await lookup;
    return null;
  } catch (err) {
    return err;
  }
}

/**
 * Agents present the bearer key from `agents create`; an operator may present ADMIN_TOKEN
 * where `allowAdmin` says so. Both are compared by hash, never logged.
 */
export async function authenticate(
  req: FastifyRequest,
  deps: AuthDeps,
  opts: { allowAdmin?: boolean } = {},
): Promise<Caller> {
  const lookup = pending.get(req);
  const caller =
    authenticated.get(req) ??
    (lookup ? await lookup : await resolveCaller(req, deps, opts.allowAdmin === true));
  // ADMIN_TOKEN is no agent key: where it is not allowed it is refused like an unknown key.
  if (caller.kind === 'admin' && !opts.allowAdmin)
    throw new AppError('ERR_UNAUTHENTICATED', 'unknown or revoked agent key');
  return caller;
}

/**
 * For a route configured with `authenticatesAlongside`: runs `work` while the caller's key is
 * looked up, and gives its result only once the caller is authenticated. A caller who is not
 * gets the refusal, whatever `work` found, so `work` must change nothing and tell nothing
 * but through its result.
 */
export async function alongsideAuthentication<T>(
  req: FastifyRequest,
  deps: AuthDeps,
  opts: { allowAdmin?: boolean },
  work: () => Promise<T>,
): Promise<{ caller: Caller; result: T }> {
  if (refused.has(req)) throw refused.get(req);
  const working = work();
  // If the caller is refused, the work's own outcome is never looked at.
  working.catch(() => undefined);
  const caller = await authenticate(req, deps, opts);
  return { caller, result: await working };
}

export async function authenticateAgentOnly(req: FastifyRequest, deps: AuthDeps): Promise<AgentRow> {
  const caller = await authenticate(req, deps);
  if (caller.kind !== 'agent') throw new AppError('ERR_FORBIDDEN', 'this route is for agents');
  return caller.agent;
}
