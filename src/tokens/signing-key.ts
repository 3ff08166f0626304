import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  sign,
  verify,
} from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { didKeyFromPublicKey, kidFromPublicKey } from '../crypto/did-key.js';
import { fromB64u } from '../crypto/hash.js';
import { AppError } from '../errors.js';

/** The public half of an Ed25519 signing key as published in JWKS. */
export interface PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid: string;
  alg: 'EdDSA';
  use: 'sig';
}

export interface SigningKey {
  kid: string;
  did: string;
  publicJwk: PublicJwk;
  publicRaw: Uint8Array;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

interface PrivateJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  d: string;
}

/** Where the bot's key comes from; see `Config.signingKey`. */
export type SigningKeySource =
  { kind: 'generated'; file: string } | { kind: 'file'; file: string } | { kind: 'jwk'; jwk: string };

function isPrivateJwk(value: unknown): value is PrivateJwk {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return v.kty === 'OKP' && v.crv === 'Ed25519' && typeof v.x === 'string' && typeof v.d === 'string';
}

/** Builds a signing key from an Ed25519 private JWK, checking that `x` really belongs to `d`. */
export function signingKeyFromJwk(value: unknown, origin: string): SigningKey {
  if (!isPrivateJwk(value)) {
    throw new AppError(
      'ERR_KEY_INVALID',
      `${origin} is not an Ed25519 private JWK (kty OKP, crv Ed25519, x, d)`,
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: value.x, d: value.d },
      format: 'jwk',
    });
  } catch (cause) {
    throw new AppError('ERR_KEY_INVALID', `${origin} could not be imported as an Ed25519 key`, { cause });
  }
  const publicKey = createPublicKey(privateKey);
  const derived = publicKey.export({ format: 'jwk' });
  if (derived.x !== value.x) {
    throw new AppError('ERR_KEY_INVALID', `${origin}: public key "x" does not match private key "d"`);
  }
  const publicRaw = fromB64u(value.x);
  const kid = kidFromPublicKey(publicRaw);
  return {
    kid,
    did: didKeyFromPublicKey(publicRaw),
    publicJwk: { kty: 'OKP', crv: 'Ed25519', x: value.x, kid, alg: 'EdDSA', use: 'sig' },
    publicRaw,
    privateKey,
    publicKey,
  };
}

export function generateSigningJwk(): PrivateJwk {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  if (!isPrivateJwk(jwk))
    throw new AppError('ERR_KEY_INVALID', 'generated key did not export as an Ed25519 JWK');
  return { kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d };
}

/** Writes a private JWK atomically with mode 0600 in a 0700 directory; never overwrites unless asked. */
export async function writeKeyFile(
  file: string,
  jwk: PrivateJwk,
  opts: { replace?: boolean } = {},
): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomUUID()}.tmp`;
  const handle = await fs.open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(jwk)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (opts.replace) {
    await fs.rename(tmp, file);
    return;
  }
  try {
    // link() fails if the target exists, so two first starts racing cannot both win.
    await fs.link(tmp, file);
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

async function readKeyFile(file: string): Promise<SigningKey> {
  let stat: Awaited<ReturnType<typeof fs.stat>>;
  try {
    stat = await fs.stat(file);
  } catch (cause) {
    throw new AppError('ERR_KEY_UNREADABLE', `signing key file ${file} cannot be read`, { cause });
  }
  if (!stat.isFile())
    throw new AppError('ERR_KEY_UNREADABLE', `signing key file ${file} is not a regular file`);
  if ((stat.mode & 0o077) !== 0) {
    throw new AppError(
      'ERR_KEY_PERMISSIONS',
      `signing key file ${file} is accessible by group or others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`,
    );
  }
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (cause) {
    throw new AppError('ERR_KEY_UNREADABLE', `signing key file ${file} cannot be read`, { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    // The parse error text may quote the file's content: keep it out of the message.
    throw new AppError('ERR_KEY_INVALID', `signing key file ${file} is not valid JSON`, {
      cause: new Error(String((cause as Error).name)),
    });
  }
  return signingKeyFromJwk(parsed, `signing key file ${file}`);
}

/**
 * Loads the bot's signing key. A `generated` source creates the key on first start (unless
 * `create: false`, for commands that must not change state); an explicit file must
 * already exist; an inline JWK is used as given.
 */
export async function loadSigningKey(
  source: SigningKeySource,
  opts: { create?: boolean } = {},
): Promise<{ key: SigningKey; created: boolean }> {
  if (source.kind === 'jwk') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(source.jwk);
    } catch {
      throw new AppError('ERR_KEY_INVALID', 'SIGNING_KEY_JWK is not valid JSON');
    }
    return { key: signingKeyFromJwk(parsed, 'SIGNING_KEY_JWK'), created: false };
  }
  if (source.kind === 'generated' && opts.create !== false) {
    try {
      await writeKeyFile(source.file, generateSigningJwk());
      return { key: await readKeyFile(source.file), created: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw wrapFsError(err, source.file);
    }
  }
  return { key: await readKeyFile(source.file), created: false };
}

function wrapFsError(err: unknown, file: string): unknown {
  if (err instanceof AppError) return err;
  return new AppError('ERR_KEY_UNREADABLE', `signing key file ${file} cannot be created`, { cause: err });
}

/** Raw Ed25519 signature, as Claw Bureau envelopes use (no JWS wrapping). */
export function signBytes(key: SigningKey, data: string | Uint8Array): Uint8Array {
  return new Uint8Array(
    sign(null, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, key.privateKey),
  );
}

export function verifyEd25519(
  publicRaw: Uint8Array,
  data: string | Uint8Array,
  signature: Uint8Array,
): boolean {
  if (publicRaw.length !== 32 || signature.length !== 64) return false;
  const publicKey = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicRaw).toString('base64url') },
    format: 'jwk',
  });
  return verify(null, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, publicKey, signature);
}
