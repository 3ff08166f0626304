import { randomBytes } from 'node:crypto';
import { sha256Hex } from '../crypto/hash.js';
import type { Db } from '../db/database.js';
import type { AgentRow } from '../db/schema.js';
import { AppError } from '../errors.js';

export const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$/;
const KEY_PREFIX = 'cak_';
const KEY_SHAPE = /^cak_[A-Za-z0-9_-]{43}$/;

/** Creates an agent and returns its bearer key, the only time the key exists in clear. */
export async function createAgent(
  db: Db,
  input: { id: string; description?: string; at: Date },
): Promise<{ agent: AgentRow; key: string }> {
  if (!AGENT_ID.test(input.id))
    throw new AppError('ERR_VALIDATION', `agent id must match ${AGENT_ID.source}`);
  const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  try {
    const agent = await db
      .insertInto('agents')
      .values({
        id: input.id,
        key_hash: sha256Hex(key),
        key_hint: key.slice(0, 8),
        description: input.description ?? '',
        created_at: input.at,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return { agent, key };
  } catch (err) {
    if ((err as { code?: string }).code === '23505') {
      throw new AppError('ERR_AGENT_EXISTS', `agent ${input.id} already exists`, { cause: err });
    }
    throw err;
  }
}

export async function listAgents(db: Db): Promise<AgentRow[]> {
  return db.selectFrom('agents').selectAll().orderBy('id').execute();
}

export async function revokeAgent(db: Db, id: string, at: Date): Promise<AgentRow> {
  const row = await db
    .updateTable('agents')
    .set({ revoked_at: at })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  if (row) return row;
  const existing = await db.selectFrom('agents').selectAll().where('id', '=', id).executeTakeFirst();
  if (!existing) throw new AppError('ERR_AGENT_NOT_FOUND', `no agent ${id}`);
  return existing;
}

/** The agent a bearer key belongs to, if the key is well-formed, known and not revoked. */
export async function authenticateAgent(db: Db, key: string): Promise<AgentRow | null> {
  if (!KEY_SHAPE.test(key)) return null;
  const row = await db
    .selectFrom('agents')
    .selectAll()
    .where('key_hash', '=', sha256Hex(key))
    .executeTakeFirst();
  return row && row.revoked_at === null ? row : null;
}
