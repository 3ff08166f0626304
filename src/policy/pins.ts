import type { Db } from '../db/database.js';
import type { PolicyPinRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import { assertHashFormat } from './registry.js';

/**
 * Pins a policy name to a registered version (rollback), or with `hash: null` returns it to
 * following its file. History is append-only; the newest row per name decides.
 */
export async function pinPolicy(
  db: Db,
  args: { name: string; hash: string | null; actor: string; reason: string },
): Promise<PolicyPinRow> {
  if (args.hash !== null) assertHashFormat(args.hash);
  return db.transaction().execute(async (trx) => {
    if (args.hash !== null) {
      const row = await trx
        .selectFrom('wpc_registry')
        .select(['policy_name'])
        .where('policy_hash_b64u', '=', args.hash)
        .executeTakeFirst();
      if (!row) throw new AppError('ERR_WPC_NOT_FOUND', `no policy with hash ${args.hash} is registered`);
      if (row.policy_name !== args.name) {
        throw new AppError(
          'ERR_POLICY_CONFLICT',
          `hash ${args.hash} belongs to policy "${row.policy_name}", not "${args.name}"`,
        );
      }
    } else {
      const known = await trx
        .selectFrom('wpc_registry')
        .select('policy_name')
        .where('policy_name', '=', args.name)
        .executeTakeFirst();
      if (!known) throw new AppError('ERR_POLICY_NOT_FOUND', `no policy named "${args.name}" is registered`);
    }
    return trx
      .insertInto('policy_pins')
      .values({ policy_name: args.name, policy_hash_b64u: args.hash, actor: args.actor, reason: args.reason })
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

/** Current pin per policy name (names following their file are absent). */
export async function currentPins(db: Db): Promise<{ pins: Map<string, string>; version: number }> {
  const rows = await db
    .selectFrom('policy_pins')
    .distinctOn('policy_name')
    .select(['policy_name', 'policy_hash_b64u', 'id'])
    .orderBy('policy_name')
    .orderBy('id', 'desc')
    .execute();
  const pins = new Map<string, string>();
  let version = 0;
  for (const r of rows) {
    if (r.policy_hash_b64u !== null) pins.set(r.policy_name, r.policy_hash_b64u);
    version = Math.max(version, r.id);
  }
  return { pins, version };
}

export async function pinHistory(db: Db, name: string): Promise<PolicyPinRow[]> {
  return db.selectFrom('policy_pins').selectAll().where('policy_name', '=', name).orderBy('id').execute();
}
