import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, never>;

export interface SigningKeysTable {
  kid: string;
  did: string;
  public_jwk: ColumnType<unknown, string, never>;
  created_at: Timestamp;
  retired_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

/** Immutable (a trigger refuses UPDATE and DELETE): a WPC is its hash. */
export interface WpcRegistryTable {
  policy_hash_b64u: string;
  policy_name: string;
  /** The JCS string the hash was computed over, kept verbatim so re-hashing is exact. */
  canonical_payload: string;
  signature_b64u: string;
  signer_did: string;
  issued_at: ColumnType<Date, Date | string, never>;
  /** Policy file the version was first loaded from, if any. */
  source: string | null;
  registered_at: Timestamp;
}

/** Append-only history; the newest row per policy name decides. A null hash means "follow the file". */
export interface PolicyPinsTable {
  id: Generated<number>;
  policy_name: string;
  policy_hash_b64u: string | null;
  actor: string;
  reason: string;
  created_at: Timestamp;
}

export interface Database {
  signing_keys: SigningKeysTable;
  wpc_registry: WpcRegistryTable;
  policy_pins: PolicyPinsTable;
}

export type WpcRegistryRow = Selectable<WpcRegistryTable>;
export type NewWpcRegistryRow = Insertable<WpcRegistryTable>;
export type PolicyPinRow = Selectable<PolicyPinsTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;
