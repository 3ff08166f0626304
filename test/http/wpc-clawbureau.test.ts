import { webcrypto } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { canonicalize as independentJcs } from 'json-canonicalize';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { sealEnvelope } from '../../src/crypto/envelope.js';
import { jcsHashB64u, sha256B64u } from '../../src/crypto/hash.js';
import { canonicalJson } from '../../src/crypto/jcs.js';
import { loadPolicyFile } from '../../src/policy/load-policy-dir.js';
import { getVerifiedPolicy, type WpcEnvelope } from '../../src/policy/registry.js';
import type { Wpc } from '../../src/policy/types.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { approvalPolicyOf, toWpcPayload, UNDECLARED_ISSUER_DID } from '../../src/policy/wpc-payload.js';
import { dialectName, type TestDb } from '../helpers/db.js';
import { copyPolicies, REPO_POLICIES_DIR } from '../helpers/fs.js';
import { silentLogger } from '../helpers/log.js';
import { createState, newKey, ringOf, testClock } from '../helpers/state.js';
import { validateCbEnvelope, validateCbPayload } from '../policy/clawbureau-wpc.js';

const shipped = readdirSync(REPO_POLICIES_DIR)
  .filter((n) => n.endsWith('.json') && n !== 'groups.json' && !n.endsWith('.schema.json'))
  .sort();

const opened: TestDb[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close()));
});

/** A loaded server over a copy of the shipped policies; closed after the test unless `shared`. */
async function setup(opts: { shared?: boolean } = {}) {
  const dir = await copyPolicies();
  const s = await createState(dir);
  if (!opts.shared) opened.push(s.d);
  await s.policies.reload();
  const app = buildApp({ db: s.db, keyRing: s.keyRing, policies: s.policies, log: silentLogger() });
  return { ...s, app, dir };
}

/** Stores a payload signed by the bot key under its hash, bypassing registerPolicy. */
async function storeSigned(s: Awaited<ReturnType<typeof setup>>, payload: unknown, name: string) {
  const hash = jcsHashB64u(payload);
  const envelope = sealEnvelope({
    type: 'work_policy_contract',
    payload,
    payloadHashB64u: hash,
    key: s.key,
    issuedAt: testClock(),
  });
  await s.db
    .insertInto('wpc_registry')
    .values({
      policy_hash_b64u: hash,
      policy_name: name,
      canonical_payload: canonicalJson(payload),
      signature_b64u: envelope.signature_b64u,
      signer_did: envelope.signer_did,
      issued_at: envelope.issued_at,
      source: null,
    })
    .execute();
  return hash;
}

const schemaErrors = (v: typeof validateCbEnvelope) =>
  JSON.stringify(v.errors?.map((e) => `${e.instancePath} ${e.message}`) ?? []);

describe(`GET /v1/wpc/:hash serves Claw Bureau WPC v1 envelopes (${dialectName})`, () => {
  describe('for every shipped policy', () => {
    let s: Awaited<ReturnType<typeof setup>>;
    let publicKey: webcrypto.CryptoKey;
    beforeAll(async () => {
      s = await setup({ shared: true });
      const jwk = (await s.app.inject('/.well-known/jwks.json')).json().keys[0];
      publicKey = await webcrypto.subtle.importKey('jwk', jwk, { name: 'Ed25519' }, false, ['verify']);
    });
    afterAll(async () => {
      await s?.d.close();
    });

    it('finds the shipped policies', () => {
      expect(shipped.length).toBeGreaterThanOrEqual(5);
    });

    it.each(shipped)(
      '%s: schema-valid with its payload, hashed as `policy hash` prints, signed, carrying the file',
      async (file) => {
        const snap = s.policies.current()!;
        // What `policy hash` prints for the file is what the server registered and serves.
        const loaded = await loadPolicyFile(path.join(REPO_POLICIES_DIR, file), snap.groups ?? undefined);
        if (!loaded.ok) throw new Error(`${file}: ${JSON.stringify(loaded.problems)}`);
        expect(snap.resolution.active.get(loaded.policy.policy_name)?.hash).toBe(loaded.hash);

        const res = await s.app.inject(`/v1/wpc/${loaded.hash}`);
        expect(res.statusCode).toBe(200);
        const envelope = res.json().envelope as WpcEnvelope;
        const valid = validateCbEnvelope(envelope);
        expect(valid ? '' : schemaErrors(validateCbEnvelope)).toBe('');
        expect(validateCbPayload(envelope.payload)).toBe(true);
        expect(envelope.payload_hash_b64u).toBe(loaded.hash);
        expect(sha256B64u(independentJcs(envelope.payload))).toBe(loaded.hash);
        expect(independentJcs(envelope.payload)).toBe(loaded.canonical);
        expect(envelope.payload).toEqual(toWpcPayload(loaded.policy));
        expect(approvalPolicyOf(envelope.payload)).toEqual(loaded.policy);
        const verified = await webcrypto.subtle.verify(
          'Ed25519',
          publicKey,
          Buffer.from(envelope.signature_b64u, 'base64url'),
          new TextEncoder().encode(envelope.payload_hash_b64u),
        );
        expect(verified).toBe(true);
        // As stored: the registry rebuilds the same envelope from its row.
        expect(await getVerifiedPolicy(s.db, loaded.hash, s.keyRing.trusts)).toEqual(envelope);
      },
    );
  });

  it('rotating the signing key re-signs the same hash: issuer_did never comes from the key', async () => {
    const s = await setup();
    const before = s.policies.current()!.resolution.active.get('invoice-triage')!;
    const next = newKey();
    const rotated = new PolicyService({
      db: s.db,
      keyRing: ringOf(next, s.key),
      clock: testClock,
      log: silentLogger(),
      policiesDir: s.dir,
    });
    const after = (await rotated.reload()).resolution.active.get('invoice-triage')!;
    expect(after.hash).toBe(before.hash);
    const envelope = await getVerifiedPolicy(s.db, after.hash, ringOf(next, s.key).trusts);
    expect(envelope.signer_did).toBe(next.did);
    expect(envelope.payload).toMatchObject({ issuer_did: UNDECLARED_ISSUER_DID });
  });

  it('a version registered before WPC v1 is still served and verifies, though it is not a WPC v1 envelope', async () => {
    const s = await setup();
    const policy = s.policies.current()!.resolution.active.get('invoice-triage')!.policy;
    const legacy = await storeSigned(s, policy, policy.policy_name);
    const res = await s.app.inject(`/v1/wpc/${legacy}`);
    expect(res.statusCode).toBe(200);
    const { envelope } = res.json();
    expect(envelope.payload).toEqual(policy);
    expect(sha256B64u(independentJcs(envelope.payload))).toBe(legacy);
    expect(validateCbEnvelope(envelope)).toBe(false);
  });

  const spoils: [string, (payload: Record<string, unknown>) => void][] = [
    ['a wider model allowlist', (p) => (p.allowed_models = ['*'])],
    ['no provider allowlist', (p) => delete p.allowed_providers],
    ['encrypted receipts despite restricted PII', (p) => (p.receipt_privacy_mode = 'encrypted')],
    ['another policy_id', (p) => (p.policy_id = 'customer-support-refund-assistant')],
  ];
  it.each(spoils)(
    'a signed payload whose gateway fields disagree with its approval policy (%s) is never served: ERR_WPC_CORRUPTED',
    async (_why, spoil) => {
      const s = await setup();
      const policy: Wpc = s.policies.current()!.resolution.active.get('invoice-triage')!.policy;
      const payload = JSON.parse(canonicalJson(toWpcPayload(policy))) as Record<string, unknown>;
      spoil(payload);
      const hash = await storeSigned(s, payload, policy.policy_name);
      const res = await s.app.inject(`/v1/wpc/${hash}`);
      expect(res.statusCode).toBe(500);
      expect(res.json()).toEqual({
        error: { code: 'ERR_WPC_CORRUPTED', message: expect.stringContaining(hash) },
      });
      expect(res.body).not.toContain('required_approvals');
      expect(res.body).not.toContain('"payload"');
    },
  );
});
