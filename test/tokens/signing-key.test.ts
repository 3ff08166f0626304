import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fixedClock } from '../../src/clock.js';
import { didKeyFromPublicKey, kidFromPublicKey } from '../../src/crypto/did-key.js';
import {
  listSigningKeys,
  publishedJwks,
  registerActiveKey,
  trustedSignerDids,
} from '../../src/tokens/key-ring.js';
import {
  generateSigningJwk,
  loadSigningKey,
  signBytes,
  signingKeyFromJwk,
  verifyEd25519,
} from '../../src/tokens/signing-key.js';
import { createTestDb, dialectName, type TestDb } from '../helpers/db.js';
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

describe(`published keys (${dialectName})`, () => {
  let d: TestDb;
  afterEach(async () => d?.close());

  it('rotation retires the old key but keeps it published for verification', async () => {
    d = await createTestDb();
    const a = signingKeyFromJwk(generateSigningJwk(), 'a');
    const b = signingKeyFromJwk(generateSigningJwk(), 'b');
    await registerActiveKey(d.db, a, fixedClock('2026-01-01T00:00:00Z'));
    await registerActiveKey(d.db, a, fixedClock('2026-01-02T00:00:00Z'));
    expect((await listSigningKeys(d.db)).map((k) => [k.kid, k.retired_at])).toEqual([[a.kid, null]]);
    await registerActiveKey(d.db, b, fixedClock('2026-02-01T00:00:00Z'));
    const rows = await listSigningKeys(d.db);
    expect(rows.find((r) => r.kid === a.kid)?.retired_at).toEqual(new Date('2026-02-01T00:00:00Z'));
    expect(rows.find((r) => r.kid === b.kid)?.retired_at).toBeNull();
    const jwks = await publishedJwks(d.db);
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual([a.kid, b.kid].sort());
    expect(await trustedSignerDids(d.db)).toEqual(new Set([a.did, b.did]));
  });
});
