import type { ColumnType, Generated, Selectable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, never>;

/** Append-only (a trigger refuses UPDATE and DELETE): a WPC is its hash; one row per signer. */
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

/**
 * Append-only, signed hash chain per policy name; the newest link decides. A null hash means
 * "follow the file".
 */
export interface PolicyPinsTable {
  id: Generated<number>;
  policy_name: string;
  policy_hash_b64u: string | null;
  actor: string;
  reason: string;
  created_at: ColumnType<Date, Date | string, never>;
  prev_pin_hash_b64u: string;
  pin_hash_b64u: string;
  signature_b64u: string;
  signer_did: string;
}

export interface Database {
  wpc_registry: WpcRegistryTable;
  policy_pins: PolicyPinsTable;
}

export type WpcRegistryRow = Selectable<WpcRegistryTable>;
export type PolicyPinRow = Selectable<PolicyPinsTable>;
