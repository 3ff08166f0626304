import fs from 'node:fs/promises';
import path from 'node:path';
import type { Clock } from '../clock.js';
import { didKeyFromPublicKey, kidFromPublicKey } from '../crypto/did-key.js';
import { fromB64u } from '../crypto/hash.js';
import { AppError } from '../errors.js';
import {
  generateSigningJwk,
  loadSigningKey,
  type PublicJwk,
  type SigningKey,
  type SigningKeySource,
  signingKeyFromJwk,
  writeKeyFile,
} from './signing-key.js';

export interface RetiredKey extends PublicJwk {
  retired_at: string;
}

/**
 * The keys this deployment trusts: the active signing key and the public halves of keys
 * rotated out. Trust comes only from these files, never from the database, so a database
 * writer cannot make the bot accept a signature of their own.
 */
/** Whether a record signed by `did` and dated `at` is acceptable. */
export type TrustCheck = (did: string, at: Date) => boolean;

export interface KeyRing {
  active: SigningKey;
  retired: RetiredKey[];
  /** did:key of every trusted key, active first. */
  trustedDids: ReadonlySet<string>;
  /**
   * The active key is trusted for anything; a retired key only for records dated no later
   * than its retirement, so a leaked old key cannot vouch for anything new.
   */
  trusts: TrustCheck;
  /**
   * Public keys for `/.well-known/jwks.json`: the active key, then each retired key with its
   * `retired_at`, so that a verifier elsewhere applies the same rotation rule as `trusts`.
   */
  jwks: { keys: (PublicJwk | RetiredKey)[] };
}

export function buildKeyRing(active: SigningKey, retired: RetiredKey[]): KeyRing {
  const others = retired.filter((k) => k.kid !== active.kid);
  const retiredAt = new Map(
    others.map((k) => [didKeyFromPublicKey(fromB64u(k.x)), Date.parse(k.retired_at)] as const),
  );
  // Members copied one by one: nothing but the public key and its date is ever published. A
  // retired key without a readable date is trusted for nothing, so it is not published either
  // (a verifier that ignored a missing date would trust it for everything).
  const published = others.flatMap((k): RetiredKey[] => {
    const until = Date.parse(k.retired_at);
    if (Number.isNaN(until)) return [];
    const { kty, crv, x, kid, alg, use } = k;
    return [{ kty, crv, x, kid, alg, use, retired_at: new Date(until).toISOString() }];
  });
  return {
    active,
    retired: others,
    trustedDids: new Set([active.did, ...retiredAt.keys()]),
    trusts: (did, at) => {
      if (did === active.did) return true;
      const until = retiredAt.get(did);
      // A retired key without a readable retirement date is trusted for nothing new.
      return until !== undefined && !Number.isNaN(until) && at.getTime() <= until;
    },
    jwks: { keys: [active.publicJwk, ...published] },
  };
}

function parseRetired(value: unknown, file: string): RetiredKey[] {
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new AppError('ERR_KEY_INVALID', `${file} must be a JWKS: {"keys":[…]}`);
  return keys.map((k, i) => {
    const jwk = k as Partial<RetiredKey>;
    let raw: Uint8Array;
    try {
      if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('shape');
      raw = fromB64u(jwk.x);
      if (raw.length !== 32) throw new Error('length');
    } catch {
      throw new AppError('ERR_KEY_INVALID', `${file}: keys[${i}] is not an Ed25519 public JWK`);
    }
    const kid = kidFromPublicKey(raw);
    if (jwk.kid !== kid)
      throw new AppError('ERR_KEY_INVALID', `${file}: keys[${i}] kid does not match its key`);
    if ('d' in (k as object))
      throw new AppError('ERR_KEY_INVALID', `${file}: keys[${i}] holds private key material`);
    return {
      kty: 'OKP',
      crv: 'Ed25519',
      x: jwk.x,
      kid,
      alg: 'EdDSA',
      use: 'sig',
      retired_at: String(jwk.retired_at ?? ''),
    };
  });
}

/** Reads the retired public keys; a missing file means none. Refuses a file others could rewrite. */
export async function readRetiredKeys(file: string): Promise<RetiredKey[]> {
  let stat: Awaited<ReturnType<typeof fs.stat>>;
  try {
    stat = await fs.stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new AppError('ERR_KEY_UNREADABLE', `retired keys file ${file} cannot be read`, { cause: err });
  }
  if ((stat.mode & 0o022) !== 0) {
    throw new AppError(
      'ERR_KEY_PERMISSIONS',
      `retired keys file ${file} is writable by group or others; run chmod 600 on it`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (cause) {
    throw new AppError('ERR_KEY_INVALID', `retired keys file ${file} is not valid JSON`, { cause });
  }
  return parseRetired(parsed, file);
}

export async function loadKeyRing(
  source: SigningKeySource,
  retiredFile: string,
  opts: { create?: boolean } = {},
): Promise<{ ring: KeyRing; created: boolean }> {
  const { key, created } = await loadSigningKey(source, opts);
  return { ring: buildKeyRing(key, await readRetiredKeys(retiredFile)), created };
}

/**
 * Replaces the active key with a new one. The old public key is appended to the retired
 * file first, so a crash between the two writes leaves the old key active and trusted.
 */
export async function rotateKeyRing(
  source: SigningKeySource,
  retiredFile: string,
  clock: Clock,
): Promise<{ from: SigningKey; to: SigningKey }> {
  if (source.kind === 'jwk') {
    throw new AppError(
      'ERR_KEY_INVALID',
      'the signing key comes from SIGNING_KEY_JWK: replace it where it is stored, and add the old public key to the retired keys file',
    );
  }
  const { ring } = await loadKeyRing(source, retiredFile, { create: false });
  const retired = [...ring.retired, { ...ring.active.publicJwk, retired_at: clock().toISOString() }];
  const next = generateSigningJwk();
  const to = signingKeyFromJwk(next, 'new key');
  await fs.mkdir(path.dirname(retiredFile), { recursive: true, mode: 0o700 });
  const tmp = `${retiredFile}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify({ keys: retired }, null, 2)}\n`, { mode: 0o600 });
  await fs.rename(tmp, retiredFile);
  await writeKeyFile(source.file, next, { replace: true });
  return { from: ring.active, to };
}
