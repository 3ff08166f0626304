import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { authenticateAgent } from '../agents/agent-keys.js';
import { sha256 } from '../crypto/hash.js';
import type { Db } from '../db/database.js';
import type { AgentRow } from '../db/schema.js';
import { AppError } from '../errors.js';

export type Caller = { kind: 'agent'; agent: AgentRow } | { kind: 'admin' };

function bearer(req: FastifyRequest): string | null {
  const header = req.headers.authorization;
  if (typeof header !== 'string') return null;
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
  return m ? m[1]! : null;
}

/**
 * Agents present the bearer key from `agents create`; an operator may present ADMIN_TOKEN
 * where `allowAdmin` says so. Both are compared by hash, never logged.
 */
export async function authenticate(
  req: FastifyRequest,
  deps: { db: Db; adminToken: string | null },
  opts: { allowAdmin?: boolean } = {},
): Promise<Caller> {
  const key = bearer(req);
  if (key === null) throw new AppError('ERR_UNAUTHENTICATED', 'an agent bearer key is required');
  if (opts.allowAdmin && deps.adminToken !== null && timingSafeEqual(sha256(key), sha256(deps.adminToken))) {
    return { kind: 'admin' };
  }
  const agent = await authenticateAgent(deps.db, key);
  if (!agent) throw new AppError('ERR_UNAUTHENTICATED', 'unknown or revoked agent key');
  return { kind: 'agent', agent };
}

export async function authenticateAgentOnly(
  req: FastifyRequest,
  deps: { db: Db; adminToken: string | null },
): Promise<AgentRow> {
  const caller = await authenticate(req, deps);
  if (caller.kind !== 'agent') throw new AppError('ERR_FORBIDDEN', 'this route is for agents');
  return caller.agent;
}
