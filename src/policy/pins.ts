import type { Clock } from '../clock.js';
import { fromB64u, jcsHashB64u } from '../crypto/hash.js';
import { publicKeyFromDidKey } from '../crypto/did-key.js';
import type { Db } from '../db/database.js';
import type { PolicyPinRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import { type SigningKey, signBytes, verifyEd25519 } from '../tokens/signing-key.js';
import { assertHashFormat } from './registry.js';

/** `prev_pin_hash_b64u` of the first pin of a policy name. */
export const PIN_GENESIS = 'genesis';

type PinFields = Pick<
  PolicyPinRow,
  'policy_name' | 'policy_hash_b64u' | 'actor' | 'reason' | 'created_at' | 'prev_pin_hash_b64u'
>;

/** The hash a pin is signed over: JCS of its decision, its author and the previous link. */
export function pinHash(p: PinFields): string {
  return jcsHashB64u({
    policy_name: p.policy_name,
    policy_hash_b64u: p.policy_hash_b64u,
    actor: p.actor,
    reason: p.reason,
    created_at: new Date(p.created_at).toISOString(),
    prev_pin_hash_b64u: p.prev_pin_hash_b64u,
  });
}

/**
 * Pins a policy name to a registered version (rollback), or with `hash: null` returns it to
 * following its file. Each pin is signed and chained to the previous one for that name; two
 * pins racing on the same link cannot both land (unique constraint).
 */
export async function pinPolicy(
  db: Db,
  args: { name: string; hash: string | null; actor: string; reason: string; key: SigningKey; clock: Clock },
): Promise<PolicyPinRow> {
  if (args.hash !== null) assertHashFormat(args.hash);
  try {
    return await db.transaction().execute(async (trx) => {
      const known = await trx
        .selectFrom('wpc_registry')
        .select(['policy_name', 'policy_hash_b64u'])
        .where((eb) =>
          args.hash === null ? eb('policy_name', '=', args.name) : eb('policy_hash_b64u', '=', args.hash),
        )
        .executeTakeFirst();
      if (!known && args.hash !== null) {
        throw new AppError('ERR_WPC_NOT_FOUND', `no policy with hash ${args.hash} is registered`);
      }
      if (!known) throw new AppError('ERR_POLICY_NOT_FOUND', `no policy named "${args.name}" is registered`);
      if (known.policy_name !== args.name) {
        throw new AppError(
          'ERR_POLICY_CONFLICT',
          `hash ${args.hash} belongs to policy "${known.policy_name}", not "${args.name}"`,
        );
      }
      const last = await trx
        .selectFrom('policy_pins')
        .select('pin_hash_b64u')
        .where('policy_name', '=', args.name)
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst();
      const fields: PinFields = {
        policy_name: args.name,
        policy_hash_b64u: args.hash,
        actor: args.actor,
        reason: args.reason,
        created_at: args.clock(),
        prev_pin_hash_b64u: last?.pin_hash_b64u ?? PIN_GENESIS,
      };
      const hash = pinHash(fields);
      return trx
        .insertInto('policy_pins')
        .values({
          ...fields,
          pin_hash_b64u: hash,
          signature_b64u: Buffer.from(signBytes(args.key, hash)).toString('base64url'),
          signer_did: args.key.did,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    });
  } catch (err) {
    if ((err as { code?: string }).code === '23505') {
      throw new AppError(
        'ERR_POLICY_CONFLICT',
        `another pin of "${args.name}" landed at the same time; retry`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
}

export interface PinState {
  /** name -> pinned hash, for names whose chain verifies and whose newest pin names a version. */
  pins: Map<string, string>;
  /** name -> why its pin history cannot be trusted (its channels must stay closed). */
  broken: Map<string, string>;
  /** Highest pin id: changes whenever a pin lands. */
  version: number;
}

function verifyLink(row: PolicyPinRow, prev: string, trusted: ReadonlySet<string>): string | null {
  if (row.prev_pin_hash_b64u !== prev) return `pin #${row.id} does not follow the previous pin`;
  if (pinHash(row) !== row.pin_hash_b64u) return `pin #${row.id} does not match its hash`;
  if (!trusted.has(row.signer_did)) return `pin #${row.id} is signed by an untrusted key`;
  try {
    const ok = verifyEd25519(
      publicKeyFromDidKey(row.signer_did),
      row.pin_hash_b64u,
      fromB64u(row.signature_b64u),
    );
    return ok ? null : `pin #${row.id} has an invalid signature`;
  } catch {
    return `pin #${row.id} has a malformed signature`;
  }
}

/** Reads and verifies every policy's pin chain. */
export async function readPins(db: Db, trusted: ReadonlySet<string>): Promise<PinState> {
  const rows = await db.selectFrom('policy_pins').selectAll().orderBy('policy_name').orderBy('id').execute();
  const state: PinState = { pins: new Map(), broken: new Map(), version: 0 };
  const byName = new Map<string, PolicyPinRow[]>();
  for (const r of rows) {
    byName.set(r.policy_name, [...(byName.get(r.policy_name) ?? []), r]);
    state.version = Math.max(state.version, r.id);
  }
  for (const [name, chain] of byName) {
    let prev = PIN_GENESIS;
    let problem: string | null = null;
    for (const row of chain) {
      problem = verifyLink(row, prev, trusted);
      if (problem) break;
      prev = row.pin_hash_b64u;
    }
    const newest = chain.at(-1)!;
    if (problem) state.broken.set(name, `pin history failed verification: ${problem}`);
    else if (newest.policy_hash_b64u !== null) state.pins.set(name, newest.policy_hash_b64u);
  }
  return state;
}

export async function latestPinId(db: Db): Promise<number> {
  const row = await db
    .selectFrom('policy_pins')
    .select((eb) => eb.fn.max('id').as('max'))
    .executeTakeFirst();
  return Number(row?.max ?? 0);
}

export async function pinHistory(db: Db, name: string): Promise<PolicyPinRow[]> {
  return db.selectFrom('policy_pins').selectAll().where('policy_name', '=', name).orderBy('id').execute();
}
