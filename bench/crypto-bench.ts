import { createHash, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CompactSign, compactVerify, importJWK } from 'jose';
import { sealEnvelope, verifyEnvelope } from '../src/crypto/envelope.js';
import { jcsHashB64u } from '../src/crypto/hash.js';
import { hashPolicy } from '../src/policy/hash-policy.js';
import type { Wpc } from '../src/policy/types.js';
import type { generateSigningJwk, SigningKey } from '../src/tokens/signing-key.js';
import { measure } from './measure.js';

/** The largest shipped policy: the realistic worst case for hashing. */
export async function largestPolicy(policiesDir: string) {
  const files = (await fs.readdir(policiesDir))
    .filter((f) => f.endsWith('.json') && f !== 'groups.json' && !f.endsWith('.schema.json'))
    .map((f) => path.join(policiesDir, f));
  const sizes = await Promise.all(files.map(async (f) => [f, (await fs.stat(f)).size] as const));
  const file = sizes.sort((a, b) => b[1] - a[1])[0]![0];
  // A shipped file the schema tests hold valid: read as the policy type it is.
  const policy = JSON.parse(await fs.readFile(file, 'utf8')) as Wpc;
  return { file, policy, hashed: hashPolicy(policy) };
}

/** Policy hashing, envelope signing and verification, each next to raw SHA-256, Ed25519 and jose. */
export async function benchCrypto(opts: {
  jwk: ReturnType<typeof generateSigningJwk>;
  key: SigningKey;
  policiesDir: string;
  budgetMs: number;
}) {
  const { key, budgetMs } = opts;
  const { file, policy, hashed } = await largestPolicy(opts.policiesDir);
  const joseKey = await importJWK({ ...opts.jwk, alg: 'EdDSA' }, 'EdDSA');
  const josePublic = await importJWK({ kty: 'OKP', crv: 'Ed25519', x: opts.jwk.x, alg: 'EdDSA' }, 'EdDSA');
  const seal = () =>
    sealEnvelope({
      type: 'work_policy_contract',
      payload: policy,
      payloadHashB64u: hashed.hash,
      key,
      issuedAt: new Date(),
    });
  const envelope = seal();
  const hashBytes = Buffer.from(hashed.hash);
  const rawSig = cryptoSign(null, hashBytes, key.privateKey);
  const joseJws = await new CompactSign(hashBytes).setProtectedHeader({ alg: 'EdDSA' }).sign(joseKey);
  return {
    policy_hash: {
      what: `JCS + SHA-256 of ${path.basename(file)} (${hashed.canonical.length} bytes canonical)`,
      ours: await measure(() => hashPolicy(policy), budgetMs),
      raw_sha256_of_canonical_text: await measure(
        () => createHash('sha256').update(hashed.canonical).digest(),
        budgetMs,
      ),
    },
    envelope_sign: {
      what: 'sign a WPC envelope (Ed25519 over payload_hash_b64u)',
      ours: await measure(seal, budgetMs),
      raw_node_ed25519_sign: await measure(() => cryptoSign(null, hashBytes, key.privateKey), budgetMs),
      raw_jose_eddsa_sign: await measure(
        () => new CompactSign(hashBytes).setProtectedHeader({ alg: 'EdDSA' }).sign(joseKey),
        budgetMs,
      ),
    },
    envelope_verify: {
      what: 'verify a WPC envelope (re-hash payload with JCS, decode did:key, Ed25519 verify)',
      ours: await measure(
        () => verifyEnvelope(envelope, { type: 'work_policy_contract', hashPayload: jcsHashB64u }),
        budgetMs,
      ),
      raw_node_ed25519_verify: await measure(
        () => cryptoVerify(null, hashBytes, key.publicKey, rawSig),
        budgetMs,
      ),
      raw_jose_eddsa_verify: await measure(() => compactVerify(joseJws, josePublic), budgetMs),
    },
  };
}
