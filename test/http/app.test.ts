import { webcrypto } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { canonicalize as independentJcs } from 'json-canonicalize';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { sha256B64u } from '../../src/crypto/hash.js';
import { toWpcPayload } from '../../src/policy/wpc-payload.js';
import type { RateLimits } from '../../src/http/rate-limit.js';
import { dialectName, type TestDb } from '../helpers/db.js';
import { copyPolicies } from '../helpers/fs.js';
import { captureLogger } from '../helpers/log.js';
import { createState, testClock } from '../helpers/state.js';

const opened: TestDb[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close().catch(() => {})));
});

const ADMIN = 'admin-token-for-tests-0123456789';

async function setup(
  opts: { load?: boolean; adminToken?: string; dir?: string; rateLimits?: Partial<RateLimits> } = {},
) {
  const logs = captureLogger();
  const s = await createState(opts.dir ?? (await copyPolicies()), logs.log);
  opened.push(s.d);
  if (opts.load !== false) await s.policies.reload();
  const app = buildApp({
    db: s.db,
    keyRing: s.keyRing,
    policies: s.policies,
    log: logs.log,
    adminToken: opts.adminToken ?? null,
    ...(opts.rateLimits ? { rateLimits: opts.rateLimits } : {}),
  });
  return { ...s, app, logs };
}

const errorOf = (res: { statusCode: number; json: () => unknown }) => [
  res.statusCode,
  (res.json() as { error: { code: string } }).error.code,
];

describe(`HTTP skeleton (${dialectName})`, () => {
  it('GET /healthz answers without touching state', async () => {
    const { app } = await setup({ load: false });
    const res = await app.inject('/healthz');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ok: true });
  });

  it('GET /readyz without ADMIN_TOKEN says ready and nothing else: no policy names, hashes or channels', async () => {
    const { app, policies } = await setup({ adminToken: ADMIN });
    const res = await app.inject('/readyz');
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({
      ok: true,
      reasons: [],
      checks: { database: { ok: true }, policies: { ok: true } },
    });
    const snap = policies.current()!;
    for (const c of snap.resolution.active.values()) {
      expect(res.body).not.toContain(c.name);
      expect(res.body).not.toContain(c.hash);
    }
    for (const channel of snap.resolution.channels.keys()) expect(res.body).not.toContain(channel);
  });

  it('GET /readyz with Bearer ADMIN_TOKEN lists active policies, open and closed channels and each problem', async () => {
    const dir = await copyPolicies();
    await fs.writeFile(path.join(dir, 'broken-policy-file.json'), '{ not json');
    const { app, policies } = await setup({ adminToken: ADMIN, dir });
    const anyone = await app.inject('/readyz');
    expect(anyone.statusCode).toBe(200);
    expect(anyone.json()).toEqual({
      ok: true,
      reasons: [],
      checks: { database: { ok: true }, policies: { ok: true, reason: 'policy problems: 1' } },
    });
    expect(anyone.body).not.toContain('broken-policy-file');
    expect(anyone.body).not.toContain(dir);

    const admin = await app.inject({ url: '/readyz', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(admin.statusCode).toBe(200);
    const snap = policies.current()!;
    const [channel, binding] = [...snap.resolution.channels][0]!;
    expect(admin.json()).toMatchObject({
      ok: true,
      reasons: [],
      checks: {
        database: { ok: true },
        policies: {
          ok: true,
          open_channels: 6,
          closed_channels: 0,
          active: expect.arrayContaining([
            {
              name: 'invoice-triage',
              hash: snap.resolution.active.get('invoice-triage')!.hash,
              origin: 'file',
            },
          ]),
          channels: { open: expect.arrayContaining([{ channel, policy: binding.policyName }]), closed: [] },
          problems: [expect.stringContaining('broken-policy-file.json')],
        },
      },
    });
  });

  it('GET /readyz is 503 with a general reason when policies are not loaded; the detail is for ADMIN_TOKEN', async () => {
    const { app } = await setup({ load: false, adminToken: ADMIN });
    const res = await app.inject('/readyz');
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({
      ok: false,
      reasons: ['policies not loaded'],
      checks: { database: { ok: true }, policies: { ok: false, reason: 'policies not loaded' } },
    });
    const admin = await app.inject({ url: '/readyz', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(admin.statusCode).toBe(503);
    expect(admin.json().reasons).toEqual(['policies: policies are not loaded']);
  });

  it('GET /readyz is 503 "database unreachable" when the database is gone', async () => {
    const { app, d } = await setup();
    await d.close();
    const res = await app.inject('/readyz');
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({
      ok: false,
      reasons: ['database unreachable'],
      checks: { database: { ok: false, reason: 'database unreachable' } },
    });
  });

  it('GET /readyz shows a contributed check by its summary; its detailed reason only with ADMIN_TOKEN', async () => {
    const logs = captureLogger();
    const s = await createState(await copyPolicies(), logs.log);
    opened.push(s.d);
    await s.policies.reload();
    const detail = 'Mattermost is unreachable: connect ECONNREFUSED 10.1.2.3:8065';
    const app = buildApp({
      db: s.db,
      keyRing: s.keyRing,
      policies: s.policies,
      log: logs.log,
      adminToken: ADMIN,
      readinessChecks: {
        mattermost: async () => ({ ok: false, reason: detail, summary: 'Mattermost not connected' }),
        cache: async () => ({ ok: false, reason: 'disk /var/lib/secret full' }),
      },
    });
    const res = await app.inject('/readyz');
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({
      ok: false,
      reasons: ['Mattermost not connected', 'cache not ready'],
      checks: {
        database: { ok: true },
        policies: { ok: true },
        mattermost: { ok: false, reason: 'Mattermost not connected' },
        cache: { ok: false, reason: 'cache not ready' },
      },
    });
    expect(res.body).not.toMatch(/10\.1\.2\.3|ECONNREFUSED|secret/);
    const admin = await app.inject({ url: '/readyz', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(admin.json().reasons).toEqual([`mattermost: ${detail}`, 'cache: disk /var/lib/secret full']);
  });

  it('GET /readyz refuses a wrong token (401) and serves no inventory over HTTP when ADMIN_TOKEN is unset', async () => {
    const { app } = await setup({ adminToken: ADMIN, rateLimits: { failedAuth: 2 } });
    const wrong = { authorization: `Bearer ${'x'.repeat(32)}` };
    for (let i = 0; i < 2; i++) {
      const res = await app.inject({ url: '/readyz', headers: wrong });
      expect(errorOf(res)).toEqual([401, 'ERR_UNAUTHENTICATED']);
      expect(res.body).not.toContain('open_channels');
    }
    // Guessing ADMIN_TOKEN here spends the same per-address budget as any failed authentication.
    const limited = await app.inject({ url: '/readyz', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(errorOf(limited)).toEqual([429, 'ERR_RATE_LIMITED']);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    const elsewhere = await app.inject({
      url: '/readyz',
      remoteAddress: '192.0.2.7',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(elsewhere.json().checks.policies.open_channels).toBe(6);

    const { app: noAdmin } = await setup();
    const res = await noAdmin.inject({ url: '/readyz', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(errorOf(res)).toEqual([401, 'ERR_UNAUTHENTICATED']);
    expect(res.body).not.toContain('open_channels');
    expect((await noAdmin.inject('/readyz')).json()).toEqual({
      ok: true,
      reasons: [],
      checks: { database: { ok: true }, policies: { ok: true } },
    });
  });

  it('GET /.well-known/jwks.json publishes public keys only', async () => {
    const { app, key } = await setup();
    const res = await app.inject('/.well-known/jwks.json');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ keys: [key.publicJwk] });
    expect(res.body).not.toContain('"d"');
  });

  it('GET /v1/wpc/:hash serves an envelope that verifies with the JWKS key over the hash string', async () => {
    const { app, policies } = await setup();
    const active = policies.current()!.resolution.active.get('change-mgmt-prod-approval')!;
    // The hash an independent RFC 8785 implementation computes for the shipped file.
    expect(sha256B64u(independentJcs(toWpcPayload(active.policy)))).toBe(active.hash);
    const res = await app.inject(`/v1/wpc/${active.hash}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toContain('immutable');
    const body = res.json();
    expect(body).toMatchObject({ ok: true, policy_hash_b64u: active.hash });
    const env = body.envelope;
    expect(env).toMatchObject({
      envelope_version: '1',
      envelope_type: 'work_policy_contract',
      payload_hash_b64u: active.hash,
      hash_algorithm: 'SHA-256',
      algorithm: 'Ed25519',
      issued_at: testClock().toISOString(),
    });
    expect(env.payload).toEqual(toWpcPayload(active.policy));
    const jwk = (await app.inject('/.well-known/jwks.json')).json().keys[0];
    const publicKey = await webcrypto.subtle.importKey(
      'jwk',
      { kty: jwk.kty, crv: jwk.crv, x: jwk.x },
      { name: 'Ed25519' },
      false,
      ['verify'],
    );
    const ok = await webcrypto.subtle.verify(
      'Ed25519',
      publicKey,
      Buffer.from(env.signature_b64u, 'base64url'),
      new TextEncoder().encode(env.payload_hash_b64u),
    );
    expect(ok).toBe(true);
  });

  it.each([
    ['too short', 'abc'],
    ['padded', `${'A'.repeat(42)}%3D`],
    ['not base64url', `${'A'.repeat(42)}+`],
    ['with a dot', `${'A'.repeat(42)}.`],
  ])('GET /v1/wpc/:hash with a malformed hash (%s) -> 400 ERR_WPC_HASH_MALFORMED', async (_why, hash) => {
    const { app } = await setup();
    const res = await app.inject(`/v1/wpc/${hash}`);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: { code: 'ERR_WPC_HASH_MALFORMED', message: expect.any(String) } });
  });

  it('GET /v1/wpc/:hash with an oversized parameter -> 414 ERR_URI_TOO_LONG in the usual error shape', async () => {
    const { app } = await setup();
    const res = await app.inject(`/v1/wpc/${'A'.repeat(500)}`);
    expect(res.statusCode).toBe(414);
    expect(res.json()).toEqual({ error: { code: 'ERR_URI_TOO_LONG', message: expect.any(String) } });
    const mid = await app.inject(`/v1/wpc/${'A'.repeat(90)}`);
    expect(mid.statusCode).toBe(400);
    expect(mid.json().error.code).toBe('ERR_WPC_HASH_MALFORMED');
  });

  it('GET /v1/wpc/:hash for an unknown hash -> 404 ERR_WPC_NOT_FOUND', async () => {
    const { app } = await setup();
    const res = await app.inject(`/v1/wpc/${'A'.repeat(43)}`);
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('ERR_WPC_NOT_FOUND');
  });

  it('GET /v1/wpc/:hash for a tampered row -> ERR_WPC_CORRUPTED, never the bad payload', async () => {
    const { app, policies, db, logs } = await setup();
    const active = policies.current()!.resolution.active.get('invoice-triage')!;
    await db.transaction().execute(async (trx) => {
      await sql`alter table wpc_registry disable trigger wpc_registry_immutable`.execute(trx);
      await sql`update wpc_registry set canonical_payload = replace(canonical_payload, '"required_approvals":2', '"required_approvals":1')
        where policy_hash_b64u = ${active.hash}`.execute(trx);
      await sql`alter table wpc_registry enable trigger wpc_registry_immutable`.execute(trx);
    });
    const res = await app.inject(`/v1/wpc/${active.hash}`);
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({
      error: { code: 'ERR_WPC_CORRUPTED', message: expect.stringContaining(active.hash) },
    });
    expect(res.body).not.toContain('required_approvals');
    expect(logs.text()).toContain('ERR_WPC_CORRUPTED');
  });

  it('unknown routes and unexpected errors use the one error shape, without leaking internals', async () => {
    const { app } = await setup();
    app.get('/boom', async () => {
      throw new Error('secret internal detail');
    });
    const missing = await app.inject('/nope?token=abc');
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: { code: 'ERR_NOT_FOUND', message: 'no route for GET /nope' } });
    const boom = await app.inject('/boom');
    expect(boom.statusCode).toBe(500);
    expect(boom.json()).toEqual({ error: { code: 'ERR_INTERNAL', message: 'internal error' } });
  });

  it('logs requests without their credentials', async () => {
    const { app, logs } = await setup();
    // Not a probe: probes are logged at debug.
    await app.inject({
      url: '/.well-known/jwks.json',
      headers: { authorization: 'Bearer very-secret-agent-key', cookie: 'session=s3cr3t' },
    });
    expect(logs.text()).toContain('/.well-known/jwks.json');
    expect(logs.text()).not.toContain('very-secret-agent-key');
    expect(logs.text()).not.toContain('s3cr3t');
    logs.log.info(
      { token: 'tok-123', req: { headers: { authorization: 'Bearer abc-999' } }, jwk: { d: 'PRIVATE' } },
      'probe',
    );
    expect(logs.text()).not.toMatch(/tok-123|abc-999|PRIVATE/);
  });

  it('graceful shutdown: an in-flight request completes, new connections are refused', async () => {
    const { app } = await setup();
    let release!: () => void;
    const started = new Promise<void>((resolve) => {
      app.get('/slow', async () => {
        resolve();
        await new Promise<void>((r) => {
          release = r;
        });
        return { done: true };
      });
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const inFlight = fetch(`http://127.0.0.1:${port}/slow`);
    await started;
    const closing = app.close();
    release();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ done: true });
    await closing;
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });
});
