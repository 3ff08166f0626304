import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { authenticateAgent } from '../agents/agent-keys.js';
import { sha256 } from '../crypto/hash.js';
import type { Db } from '../db/database.js';
import type { AgentRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { ApiRateLimiter } from './rate-limit.js';

export type Caller = { kind: 'agent'; agent: AgentRow } | { kind: 'admin' };

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

/**
 * `onRequest` hook of a scope whose routes all need a caller: authenticates before the body
 * is read and counts the request against the caller's budget, or against the address's
 * failure budget when the credential is missing or wrong.
 */
export function authenticationHook(deps: AuthDeps & { allowAdmin: boolean; limiter: ApiRateLimiter }) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    deps.limiter.attempt(req, reply);
    const caller = await resolveCaller(req, deps, deps.allowAdmin);
    deps.limiter.authenticated(req, reply, caller.kind === 'admin' ? 'admin' : `agent:${caller.agent.id}`);
    authenticated.set(req, caller);
  };
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
  const caller = authenticated.get(req) ?? (await resolveCaller(req, deps, opts.allowAdmin === true));
  // ADMIN_TOKEN is no agent key: where it is not allowed it is refused like an unknown key.
  if (caller.kind === 'admin' && !opts.allowAdmin)
    throw new AppError('ERR_UNAUTHENTICATED', 'unknown or revoked agent key');
  return caller;
}

export async function authenticateAgentOnly(req: FastifyRequest, deps: AuthDeps): Promise<AgentRow> {
  const caller = await authenticate(req, deps);
  if (caller.kind !== 'agent') throw new AppError('ERR_FORBIDDEN', 'this route is for agents');
  return caller.agent;
}
