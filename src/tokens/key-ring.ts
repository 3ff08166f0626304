import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import type { SigningKeyRow } from '../db/schema.js';
import type { PublicJwk, SigningKey } from './signing-key.js';

/**
 * Records the active signing key's public half and retires any other active one. Retired
 * keys stay published so envelopes and tokens they signed keep verifying.
 */
export async function registerActiveKey(db: Db, key: SigningKey, clock: Clock): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('signing_keys')
      .values({ kid: key.kid, did: key.did, public_jwk: JSON.stringify(key.publicJwk), created_at: clock() })
      .onConflict((oc) => oc.column('kid').doUpdateSet({ retired_at: null }))
      .execute();
    await trx
      .updateTable('signing_keys')
      .set({ retired_at: clock() })
      .where('kid', '!=', key.kid)
      .where('retired_at', 'is', null)
      .execute();
  });
}

export async function listSigningKeys(db: Db): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_keys').selectAll().orderBy('created_at', 'desc').execute();
}

export async function publishedJwks(db: Db): Promise<{ keys: PublicJwk[] }> {
  const rows = await listSigningKeys(db);
  return { keys: rows.map((r) => r.public_jwk as PublicJwk) };
}

/** DIDs whose signatures the registry accepts: every key this deployment has used. */
export async function trustedSignerDids(db: Db): Promise<Set<string>> {
  const rows = await db.selectFrom('signing_keys').select('did').execute();
  return new Set(rows.map((r) => r.did));
}
