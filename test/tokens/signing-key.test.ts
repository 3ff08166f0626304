import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixedClock } from '../../src/clock.js';
import { didKeyFromPublicKey, kidFromPublicKey } from '../../src/crypto/did-key.js';
import { loadKeyRing, type RetiredKey, readRetiredKeys, rotateKeyRing } from '../../src/tokens/key-ring.js';
import {
  generateSigningJwk,
  loadSigningKey,
  signBytes,
  signingKeyFromJwk,
  verifyEd25519,
} from '../../src/tokens/signing-key.js';
import { tempDir } from '../helpers/fs.js';

describe('signing key source', () => {
  it('generates a key with mode 0600 in a 0700 directory on first start and reuses it after', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'keys', 'signing-key.jwk.json');
    const first = await loadSigningKey({ kind: 'generated', file });
    expect(first.created).toBe(true);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    const second = await loadSigningKey({ kind: 'generated', file });
    expect(second.created).toBe(false);
    expect(second.key.kid).toBe(first.key.kid);
    expect(second.key.did).toBe(first.key.did);
  });

  it('two first starts racing end with one key', async () => {
    const file = path.join(await tempDir(), 'k.jwk.json');
    const results = await Promise.all(
      Array.from({ length: 5 }, () => loadSigningKey({ kind: 'generated', file })),
    );
    expect(new Set(results.map((r) => r.key.kid)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
  });

  it('derives kid and did:key from the raw public key as SPEC section 4 says', async () => {
    const { key } = await loadSigningKey({ kind: 'jwk', jwk: JSON.stringify(generateSigningJwk()) });
    expect(key.kid).toMatch(/^[0-9a-f]{16}$/);
    expect(key.kid).toBe(kidFromPublicKey(key.publicRaw));
    expect(key.did).toBe(didKeyFromPublicKey(key.publicRaw));
    expect(key.did).toMatch(/^did:key:z6Mk/);
    expect(key.publicJwk).toEqual({
      kty: 'OKP',
      crv: 'Ed25519',
      x: expect.any(String),
      kid: key.kid,
      alg: 'EdDSA',
      use: 'sig',
    });
    expect(JSON.stringify(key.publicJwk)).not.toContain('"d"');
    const sig = signBytes(key, 'hello');
    expect(verifyEd25519(key.publicRaw, 'hello', sig)).toBe(true);
    expect(verifyEd25519(key.publicRaw, 'hellp', sig)).toBe(false);
  });

  it('refuses a key file readable by group or others', async () => {
    const file = path.join(await tempDir(), 'k.jwk.json');
    await fs.writeFile(file, JSON.stringify(generateSigningJwk()), { mode: 0o644 });
    await fs.chmod(file, 0o644);
    await expect(loadSigningKey({ kind: 'file', file })).rejects.toMatchObject({
      code: 'ERR_KEY_PERMISSIONS',
    });
  });

  it('reports a missing explicit key file instead of generating one', async () => {
    const file = path.join(await tempDir(), 'absent.jwk.json');
    await expect(loadSigningKey({ kind: 'file', file })).rejects.toMatchObject({
      code: 'ERR_KEY_UNREADABLE',
    });
    await expect(fs.stat(file)).rejects.toThrow();
  });

  it('reports an unreadable key path (a directory) as ERR_KEY_UNREADABLE', async () => {
    const dir = await tempDir();
    await expect(loadSigningKey({ kind: 'file', file: dir })).rejects.toMatchObject({
      code: 'ERR_KEY_UNREADABLE',
    });
  });

  it('rejects a corrupt key file without echoing its content', async () => {
    const file = path.join(await tempDir(), 'k.jwk.json');
    await fs.writeFile(file, '{"kty":"OKP","d":"SECRET-MATERIAL', { mode: 0o600 });
    const err = await loadSigningKey({ kind: 'file', file }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_KEY_INVALID' });
    expect(String((err as Error).message)).not.toContain('SECRET-MATERIAL');
  });

  it.each([
    ['not an object', '"x"'],
    ['wrong key type', JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'a', d: 'b' })],
    ['public key only', JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: generateSigningJwk().x })],
    ['x that does not belong to d', JSON.stringify({ ...generateSigningJwk(), x: generateSigningJwk().x })],
    ['not JSON', '{'],
  ])('rejects an inline JWK that is %s', async (_why, jwk) => {
    await expect(loadSigningKey({ kind: 'jwk', jwk })).rejects.toMatchObject({ code: 'ERR_KEY_INVALID' });
  });

  it('accepts a supplied JWK and derives the same identity as from a file', async () => {
    const jwk = generateSigningJwk();
    const file = path.join(await tempDir(), 'k.jwk.json');
    await fs.writeFile(file, JSON.stringify(jwk), { mode: 0o600 });
    const fromFile = await loadSigningKey({ kind: 'file', file });
    const inline = await loadSigningKey({ kind: 'jwk', jwk: JSON.stringify(jwk) });
    expect(inline.key.did).toBe(fromFile.key.did);
    expect(signingKeyFromJwk(jwk, 'x').kid).toBe(fromFile.key.kid);
  });
});

describe('key ring (trust comes from files, never from the database)', () => {
  it('rotation moves the old public key to the retired file; both stay trusted and in JWKS', async () => {
    const dir = await tempDir();
    const source = { kind: 'generated' as const, file: path.join(dir, 'keys', 'signing-key.jwk.json') };
    const retiredFile = path.join(dir, 'keys', 'retired.jwks.json');
    await expect(loadKeyRing(source, retiredFile, { create: false })).rejects.toMatchObject({
      code: 'ERR_KEY_UNREADABLE',
    });
    const { ring: first, created } = await loadKeyRing(source, retiredFile, { create: true });
    expect(created).toBe(true);
    expect(first.retired).toEqual([]);
    const { from, to } = await rotateKeyRing(source, retiredFile, fixedClock('2026-02-01T00:00:00Z'));
    expect(from.kid).toBe(first.active.kid);
    const { ring } = await loadKeyRing(source, retiredFile, { create: false });
    expect(ring.active.kid).toBe(to.kid);
    expect(ring.retired).toEqual([{ ...first.active.publicJwk, retired_at: '2026-02-01T00:00:00.000Z' }]);
    expect(ring.trustedDids).toEqual(new Set([to.did, from.did]));
    expect(ring.jwks.keys.map((k) => k.kid)).toEqual([to.kid, from.kid]);
    // Published with its retirement date, so verifiers elsewhere apply the same rotation rule.
    expect(ring.jwks.keys[1]).toEqual({ ...first.active.publicJwk, retired_at: '2026-02-01T00:00:00.000Z' });
    expect((await fs.stat(retiredFile)).mode & 0o777).toBe(0o600);
    expect(await fs.readFile(retiredFile, 'utf8')).not.toContain('"d"');
  });

  it('refuses rotation of a key supplied inline', async () => {
    const dir = await tempDir();
    await expect(
      rotateKeyRing(
        { kind: 'jwk', jwk: JSON.stringify(generateSigningJwk()) },
        path.join(dir, 'r.json'),
        fixedClock('2026-01-01T00:00:00Z'),
      ),
    ).rejects.toMatchObject({ code: 'ERR_KEY_INVALID' });
  });

  it.each([
    ['a kid that does not belong to its key', (k: RetiredKey) => ({ ...k, kid: '0000000000000000' })],
    ['private key material', (k: RetiredKey) => ({ ...k, d: generateSigningJwk().d })],
    ['a non-Ed25519 key', (k: RetiredKey) => ({ ...k, crv: 'X25519' })],
    ['a short key', (k: RetiredKey) => ({ ...k, x: 'AAAA' })],
  ])('refuses a retired keys file with %s', async (_why, mutate) => {
    const dir = await tempDir();
    const key = signingKeyFromJwk(generateSigningJwk(), 'k');
    const file = path.join(dir, 'retired.jwks.json');
    await fs.writeFile(file, JSON.stringify({ keys: [mutate({ ...key.publicJwk, retired_at: 'x' })] }), {
      mode: 0o600,
    });
    await expect(readRetiredKeys(file)).rejects.toMatchObject({ code: 'ERR_KEY_INVALID' });
  });

  it('refuses a retired keys file that others could rewrite (it decides whom we trust)', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'retired.jwks.json');
    await fs.writeFile(file, '{"keys":[]}', { mode: 0o600 });
    await fs.chmod(file, 0o666);
    await expect(readRetiredKeys(file)).rejects.toMatchObject({ code: 'ERR_KEY_PERMISSIONS' });
    await fs.chmod(file, 0o644);
    expect(await readRetiredKeys(file)).toEqual([]);
  });
});
