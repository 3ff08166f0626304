import type { Clock } from '../clock.js';
import { publicKeyFromDidKey } from '../crypto/did-key.js';
import { fromB64u, jcsHashB64u } from '../crypto/hash.js';
import type { Db } from '../db/database.js';
import type { PolicyPinRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { TrustCheck } from '../tokens/key-ring.js';
import { type SigningKey, signBytes, verifyEd25519 } from '../tokens/signing-key.js';
import { assertHashFormat, getVerifiedApprovalPolicy } from './registry.js';

/** `prev_pin_hash_b64u` of the first pin of a policy name. */
export const PIN_GENESIS = 'genesis';

/**
 * What a pin signature covers. The prefix keeps pin signatures from ever verifying as
 * Claw Bureau envelope signatures (which sign the bare hash) and the other way round.
 */
const pinMessage = (hash: string) => `claw-approvals/policy-pin/v1\n${hash}`;

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
 * following its file. The version must verify and really be a version of that policy. Each
 * pin is signed and chained to the previous one for that name; two pins racing on the same
 * link cannot both land (unique constraint).
 */
export async function pinPolicy(
  db: Db,
  args: {
    name: string;
    hash: string | null;
    actor: string;
    reason: string;
    key: SigningKey;
    trusts: TrustCheck;
    clock: Clock;
  },
): Promise<PolicyPinRow> {
  if (args.hash !== null) {
    assertHashFormat(args.hash);
    const policy = await getVerifiedApprovalPolicy(db, args.hash, args.trusts);
    if (policy.policy_name !== args.name) {
      throw new AppError(
        'ERR_POLICY_CONFLICT',
        `hash ${args.hash} is a version of "${policy.policy_name}", not "${args.name}"`,
      );
    }
  }
  try {
    return await db.transaction().execute(async (trx) => {
      if (args.hash === null) {
        const known = await trx
          .selectFrom('policy_pins')
          .select('id')
          .where('policy_name', '=', args.name)
          .executeTakeFirst();
        if (!known) throw new AppError('ERR_POLICY_NOT_FOUND', `policy "${args.name}" has never been pinned`);
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
          signature_b64u: Buffer.from(signBytes(args.key, pinMessage(hash))).toString('base64url'),
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
  /** name -> newest verified pin hash (remember these to detect deleted pins later). */
  heads: Map<string, string>;
}

function verifyLink(row: PolicyPinRow, prev: string, prevAt: number, trusts: TrustCheck): string | null {
  if (row.prev_pin_hash_b64u !== prev) return `pin #${row.id} does not follow the previous pin`;
  if (pinHash(row) !== row.pin_hash_b64u) return `pin #${row.id} does not match its hash`;
  const at = new Date(row.created_at);
  if (at.getTime() < prevAt) return `pin #${row.id} is dated before the pin it follows`;
  if (!trusts(row.signer_did, at)) return `pin #${row.id} is signed by an untrusted key`;
  try {
    const ok = verifyEd25519(
      publicKeyFromDidKey(row.signer_did),
      pinMessage(row.pin_hash_b64u),
      fromB64u(row.signature_b64u),
    );
    return ok ? null : `pin #${row.id} has an invalid signature`;
  } catch {
    return `pin #${row.id} has a malformed signature`;
  }
}

/**
 * Reads and verifies every policy's pin chain. `knownHeads` are chain heads seen before
 * (kept outside the database): a chain that no longer contains its known head has lost
 * pins, which would silently roll a policy back, so it counts as broken.
 */
export async function readPins(
  db: Db,
  trusts: TrustCheck,
  knownHeads: ReadonlyMap<string, string> = new Map(),
): Promise<PinState> {
  const rows = await db.selectFrom('policy_pins').selectAll().orderBy('policy_name').orderBy('id').execute();
  const state: PinState = { pins: new Map(), broken: new Map(), heads: new Map() };
  const byName = new Map<string, PolicyPinRow[]>();
  for (const r of rows) byName.set(r.policy_name, [...(byName.get(r.policy_name) ?? []), r]);
  for (const [name, head] of knownHeads) {
    const chain = byName.get(name) ?? [];
    if (!chain.some((r) => r.pin_hash_b64u === head)) {
      state.broken.set(name, 'pin history failed verification: pins seen before are missing');
    }
  }
  for (const [name, chain] of byName) {
    let prev = PIN_GENESIS;
    let prevAt = Number.NEGATIVE_INFINITY;
    let problem: string | null = null;
    for (const row of chain) {
      problem = verifyLink(row, prev, prevAt, trusts);
      if (problem) break;
      prev = row.pin_hash_b64u;
      prevAt = new Date(row.created_at).getTime();
    }
    if (problem) {
      state.broken.set(name, `pin history failed verification: ${problem}`);
      continue;
    }
    state.heads.set(name, prev);
    const newest = chain.at(-1)!;
    if (!state.broken.has(name) && newest.policy_hash_b64u !== null)
      state.pins.set(name, newest.policy_hash_b64u);
  }
  return state;
}

/** Changes whenever any pin is added or removed, whatever order their ids committed in. */
export async function pinsDigest(db: Db): Promise<string> {
  const row = await db
    .selectFrom('policy_pins')
    .select((eb) => [
      eb.fn.countAll<number>().as('n'),
      eb.fn<string>('md5', [eb.fn('string_agg', ['pin_hash_b64u', eb.val(',')])]).as('digest'),
    ])
    .executeTakeFirst();
  return `${row?.n ?? 0}:${row?.digest ?? ''}`;
}

export async function pinHistory(db: Db, name: string): Promise<PolicyPinRow[]> {
  return db.selectFrom('policy_pins').selectAll().where('policy_name', '=', name).orderBy('id').execute();
}
