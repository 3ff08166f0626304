import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fetchSource } from '../../src/cli/read-source.js';
import { sealEnvelope } from '../../src/crypto/envelope.js';
import { getVerifiedPolicy, listRegisteredPolicies } from '../../src/policy/registry.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import { buildKeyRing } from '../../src/tokens/key-ring.js';
import { cli } from '../helpers/cli.js';
import { tempDir } from '../helpers/fs.js';
import { testGateway } from '../helpers/receipts.js';
import { newKey } from '../helpers/state.js';
import { type Listening, type Sealed, sealedJob, serveApp, serveRaw } from './bundle-verify-fixture.js';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});
const keep = <T extends { close(): Promise<void> }>(o: T): T => {
  open.push(o);
  return o;
};

/**
 * The reviewer's machine: nothing of the server's (no key, no database, no Mattermost). The
 * configuration it has is broken on purpose: `bundle verify <file|url>` must not even read it.
 */
async function reviewer(): Promise<{ env: Record<string, string>; home: string }> {
  const home = await tempDir('claw-reviewer-');
  return { env: { HOME: home, DATA_DIR: path.join(home, 'data'), MATTERMOST_URL: 'not a url' }, home };
}

// One sealed job for the file: the tests only read it (and serve it).
let sealedOnce: Sealed;
beforeAll(async () => {
  sealedOnce = await sealedJob();
});
afterAll(() => sealedOnce.close());

async function writeJson(dir: string, name: string, value: unknown): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

const jwksOf = (s: Sealed) => s.engine.ctx.keyRing.jwks;
const signerOf = (s: Sealed) => s.engine.ctx.keyRing.active.did;
const GATEWAY = ['--gateway', testGateway.did];
const linkOf = (server: Listening, id: string) => `${server.url}/v1/bundles/${id}`;
const jwksUrl = (server: Listening) => `${server.url}/.well-known/jwks.json`;
/** `FAIL <cbReason> (<reason>): …`, or `FAIL <reason>: …` when Claw Bureau has no code for it. */
const failLine = (reason: string) => new RegExp(`^FAIL (\\S+ \\()?${reason}\\)?: `);

describe('bundle verify <file | url> on a reviewer machine', () => {
  it('verifies a sealed bundle file against the server JWKS file, reading no configuration and writing nothing', async () => {
    const s = sealedOnce;
    const { env, home } = await reviewer();
    const dir = await tempDir();
    const file = await writeJson(dir, 'bundle.json', s.text);
    const jwks = await writeJson(dir, 'jwks.json', jwksOf(s));
    const res = await cli(['bundle', 'verify', file, '--jwks', jwks, ...GATEWAY], env);
    expect(res.err).toBe('');
    expect(res.code).toBe(0);
    const { payload } = JSON.parse(s.text);
    expect(res.out).toBe(
      `OK ${s.bundleId}: signed by ${signerOf(s)} (trusted: jwks ${jwks}); ${payload.event_chain.length} chained ` +
        `events, ${payload.human_approval_receipts.length} approval receipts, 1 gateway receipts verified; ` +
        'gates and approval rules checked against the chain only (the signed policy was not supplied: pass --policy)',
    );
    expect(await fs.readdir(home)).toEqual([]);
  });

  it('verifies a bundle by its link and the JWKS of the real server that sealed it, --json listing checks and trust', async () => {
    const s = sealedOnce;
    const server = keep(await serveApp(s.engine));
    const { env } = await reviewer();
    const link = linkOf(server, s.bundleId);
    const res = await cli(['bundle', 'verify', link, '--jwks', jwksUrl(server), ...GATEWAY, '--json'], env);
    expect(res.code).toBe(0);
    const out = JSON.parse(res.out);
    expect(out).toMatchObject({
      verdict: 'OK',
      ok: true,
      reason: 'OK',
      bundleId: s.bundleId,
      signerDid: signerOf(s),
      target: { kind: 'url', ref: link },
      trust: {
        bundle_signers: [{ did: signerOf(s), source: `jwks ${jwksUrl(server)}`, retired_at: null }],
        gateway_signers: [{ did: testGateway.did, source: '--gateway' }],
      },
    });
    expect(out.checks.length).toBeGreaterThan(1);
    for (const c of out.checks)
      expect(c).toMatchObject({ id: expect.any(String), ok: true, message: expect.any(String) });
    expect(out.checks).toContainEqual(expect.objectContaining({ id: 'target.bundle_id', ok: true }));
    // The link's server also publishes the signed policy: each step's rule is recomputed from it.
    const rules = out.checks.find((c: { id: string }) => c.id === 'ours.policy_rules');
    expect(rules).toMatchObject({ ok: true });
    expect(rules.message).not.toMatch(/^not made/);
  });

  it('--policy: the signed policy the bundle names confirms its rules; another version is refused', async () => {
    const s = sealedOnce;
    const { env } = await reviewer();
    const dir = await tempDir();
    const file = await writeJson(dir, 'bundle.json', s.text);
    const jwks = await writeJson(dir, 'jwks.json', jwksOf(s));
    const named = JSON.parse(s.text).payload.metadata.claw_approvals.policy.policy_hash_b64u as string;
    const versions = await listRegisteredPolicies(s.engine.ctx.db);
    const envelopeOf = (hash: string) =>
      getVerifiedPolicy(s.engine.ctx.db, hash, s.engine.ctx.keyRing.trusts);
    const own = await writeJson(dir, 'own.json', await envelopeOf(named));
    const other = versions.find((v) => v.policy_hash_b64u !== named)!;
    const wrong = await writeJson(dir, 'wrong.json', await envelopeOf(other.policy_hash_b64u));

    const ok = await cli(
      ['bundle', 'verify', file, '--jwks', jwks, ...GATEWAY, '--policy', own, '--json'],
      env,
    );
    expect(ok.code).toBe(0);
    const rules = JSON.parse(ok.out).checks.find((c: { id: string }) => c.id === 'ours.policy_rules');
    expect(rules).toMatchObject({ ok: true });
    expect(rules.message).not.toMatch(/^not made/);

    const bad = await cli(['bundle', 'verify', file, '--jwks', jwks, ...GATEWAY, '--policy', wrong], env);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(failLine('POLICY_BINDING_MISMATCH'));

    // Without --policy, a file's rules are checked against its own chain only, and it says so.
    const plain = await cli(['bundle', 'verify', file, '--jwks', jwks, ...GATEWAY, '--json'], env);
    const unchecked = JSON.parse(plain.out).checks.find((c: { id: string }) => c.id === 'ours.policy_rules');
    expect(unchecked).toMatchObject({ ok: true, message: expect.stringMatching(/^not made/) });
  });

  it('refuses to judge without a trust source: the bundle never vouches for itself', async () => {
    const s = sealedOnce;
    const { env } = await reviewer();
    const dir = await tempDir();
    const file = await writeJson(dir, 'bundle.json', s.text);
    const gatewaysOnly = await writeJson(dir, 'allow.json', {
      gateway_receipt_signer_dids: [testGateway.did],
    });
    for (const args of [[file], [file, '--allowlist', gatewaysOnly], [file, ...GATEWAY]]) {
      const res = await cli(['bundle', 'verify', ...args], env);
      expect(res.code).toBe(1);
      expect(res.out).toBe('');
      expect(res.err).toBe(
        'error ERR_VALIDATION: no bundle signer to trust: pass --jwks https://<server>/.well-known/jwks.json ' +
          "(the server that sealed the bundle) or --trust did:key:…; the bundle's own signer_did is never trusted",
      );
    }
    // --trust names a signer by hand; a DID that is not an Ed25519 did:key is refused by name.
    expect((await cli(['bundle', 'verify', file, '--trust', signerOf(s), ...GATEWAY], env)).code).toBe(0);
    const bad = await cli(['bundle', 'verify', file, '--trust', 'did:web:example.com'], env);
    expect(bad.err).toBe('error ERR_VALIDATION: --trust: not an Ed25519 did:key (did:key:z6Mk…)');
  });

  it('fails a bundle re-signed by a key the JWKS does not list, and a gateway receipt nobody trusts', async () => {
    const s = sealedOnce;
    const { env } = await reviewer();
    const dir = await tempDir();
    const jwks = await writeJson(dir, 'jwks.json', jwksOf(s));
    const forger = newKey();
    const env0 = JSON.parse(s.text);
    const payload = { ...env0.payload, agent_did: forger.did };
    const forged = sealEnvelope({
      type: 'proof_bundle',
      payload,
      payloadHashB64u: bundlePayloadHash(payload),
      key: forger,
      issuedAt: new Date(env0.issued_at),
    });
    const res = await cli(
      ['bundle', 'verify', await writeJson(dir, 'forged.json', forged), '--jwks', jwks, ...GATEWAY],
      env,
    );
    expect(res.code).toBe(1);
    expect(res.out).toMatch(failLine('BUNDLE_SIGNER_UNTRUSTED'));
    expect(res.err).toMatch(/^error ERR_BUNDLE_INVALID: BUNDLE_SIGNER_UNTRUSTED: /);

    const noGateway = await cli(
      ['bundle', 'verify', await writeJson(dir, 'b.json', s.text), '--jwks', jwks],
      env,
    );
    expect(noGateway.code).toBe(1);
    expect(noGateway.out).toMatch(failLine('RECEIPT_SIGNER_UNTRUSTED'));
  });

  it('trusts a retired key of the served JWKS only for bundles issued at or before its retired_at', async () => {
    const s = sealedOnce;
    const { env } = await reviewer();
    const issuedAt = JSON.parse(s.text).issued_at as string;
    expect(issuedAt).toBe('2026-11-21T10:00:00.000Z');
    const rotated = (retiredAt: string) =>
      buildKeyRing(newKey(), [{ ...s.engine.ctx.keyRing.active.publicJwk, retired_at: retiredAt }]);
    const before = keep(await serveApp(s.engine, rotated('2026-11-21T09:59:59.999Z')));
    const at = keep(await serveApp(s.engine, rotated(issuedAt)));

    const early = await cli(
      ['bundle', 'verify', linkOf(before, s.bundleId), '--jwks', jwksUrl(before), ...GATEWAY, '--json'],
      env,
    );
    expect(early.code).toBe(1);
    expect(JSON.parse(early.out)).toMatchObject({
      verdict: 'FAIL',
      reason: 'BUNDLE_SIGNER_UNTRUSTED',
      trust: {
        bundle_signers: [
          expect.objectContaining({ retired_at: null }),
          { did: signerOf(s), source: `jwks ${jwksUrl(before)}`, retired_at: '2026-11-21T09:59:59.999Z' },
        ],
      },
    });
    const onTime = await cli(
      ['bundle', 'verify', linkOf(at, s.bundleId), '--jwks', jwksUrl(at), ...GATEWAY],
      env,
    );
    expect(onTime.code).toBe(0);
    expect(onTime.out).toMatch(new RegExp(`^OK ${s.bundleId}: signed by ${signerOf(s)} `));
  });

  it('answers a bundle that is not JSON, or JSON that is not an envelope, with a FAIL line', async () => {
    const { env } = await reviewer();
    const dir = await tempDir();
    const s = sealedOnce;
    const jwks = await writeJson(dir, 'jwks.json', jwksOf(s));
    const html = keep(
      await serveRaw((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<!doctype html><title>sign in</title>');
      }),
    );
    const cases: [string, RegExp][] = [
      [
        await writeJson(dir, 'half.json', '{"envelope_version":'),
        new RegExp(`^FAIL MALFORMED_ENVELOPE \\(BUNDLE_ENVELOPE_MALFORMED\\): ${dir}/half.json is not JSON$`),
      ],
      [
        `${html.url}/v1/bundles/pb_AAAAAAAAAAAAAAAAAAAAAA`,
        /^FAIL MALFORMED_ENVELOPE \(BUNDLE_ENVELOPE_MALFORMED\): http:\/\/127\.0\.0\.1:\d+\/v1\/bundles\/pb_A{22} is not JSON \(Content-Type text\/html\)$/,
      ],
      [await writeJson(dir, 'object.json', { hello: 'world' }), failLine('BUNDLE_ENVELOPE_MALFORMED')],
      [await writeJson(dir, 'array.json', []), failLine('BUNDLE_ENVELOPE_MALFORMED')],
    ];
    for (const [target, line] of cases) {
      const res = await cli(['bundle', 'verify', target, '--jwks', jwks, '--json'], env);
      expect(res.code).toBe(1);
      expect(JSON.parse(res.out)).toMatchObject({ verdict: 'FAIL', reason: 'BUNDLE_ENVELOPE_MALFORMED' });
      const text = await cli(['bundle', 'verify', target, '--jwks', jwks], env);
      expect(text.out).toMatch(line);
    }
  });

  it('refuses an answer or a file over 16 MB without reading it all', async () => {
    const { env } = await reviewer();
    const dir = await tempDir();
    const jwks = await writeJson(dir, 'jwks.json', { keys: [newKey().publicJwk] });
    let streamed = 0;
    const server = keep(
      await serveRaw((req, res) => {
        if (req.url === '/declared') {
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': String(17 * 1024 * 1024),
          });
          res.write('[');
          return;
        }
        // Chunked, no length: the client has to count, and stop.
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const pump = () => {
          while (!res.destroyed && streamed < 64 * 1024 * 1024) {
            streamed += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('close', () => res.destroy());
        pump();
      }),
    );
    for (const url of [`${server.url}/declared`, `${server.url}/endless`]) {
      const res = await cli(['bundle', 'verify', url, '--jwks', jwks], env);
      expect(res.code).toBe(1);
      expect(res.err).toBe(`error ERR_PAYLOAD_TOO_LARGE: bundle ${url} is larger than 16 MB: refused`);
    }
    expect(streamed).toBeLessThan(64 * 1024 * 1024);
    const big = path.join(dir, 'big.json');
    await fs.writeFile(big, '');
    await fs.truncate(big, 16 * 1024 * 1024 + 1);
    const res = await cli(['bundle', 'verify', big, '--jwks', jwks], env);
    expect(res.err).toBe(`error ERR_PAYLOAD_TOO_LARGE: bundle ${big} is larger than 16 MB: refused`);
  });

  it('follows a redirect within the origin, refuses one to another host (bundle and JWKS alike)', async () => {
    const s = sealedOnce;
    const { env } = await reviewer();
    const app = keep(await serveApp(s.engine));
    const port = new URL(app.url).port;
    const proxy = keep(
      await serveRaw((req, res) => {
        const to: Record<string, string> = {
          // Same origin: the proxy itself serves what it redirects to.
          [`/v1/bundles/${s.bundleId}`]: `/moved/${s.bundleId}`,
          '/.well-known/jwks.json': `http://localhost:${port}/.well-known/jwks.json`,
          '/elsewhere': `http://localhost:${port}/v1/bundles/${s.bundleId}`,
          '/loop': '/loop',
        };
        if (req.url === `/moved/${s.bundleId}`) {
          res.writeHead(200, { 'content-type': 'application/json' });
          return void res.end(s.text);
        }
        res.writeHead(302, { location: to[req.url ?? ''] ?? '/nowhere' });
        res.end();
      }),
    );
    const jwksFile = await writeJson(await tempDir(), 'jwks.json', jwksOf(s));
    const followed = await cli(
      ['bundle', 'verify', `${proxy.url}/v1/bundles/${s.bundleId}`, '--jwks', jwksFile, ...GATEWAY],
      env,
    );
    expect(followed.code).toBe(0);

    const elsewhere = await cli(['bundle', 'verify', `${proxy.url}/elsewhere`, '--jwks', jwksFile], env);
    expect(elsewhere.err).toBe(
      `error ERR_BUNDLE_NOT_FOUND: bundle ${proxy.url}/elsewhere: redirects to another origin ` +
        `(http://localhost:${port}): refused; fetch that URL directly if you trust it`,
    );
    const jwks = await cli(
      [
        'bundle',
        'verify',
        `${proxy.url}/moved/${s.bundleId}`,
        '--jwks',
        `${proxy.url}/.well-known/jwks.json`,
      ],
      env,
    );
    expect(jwks.err).toBe(
      `error ERR_KEY_UNREADABLE: JWKS ${proxy.url}/.well-known/jwks.json: redirects to another origin ` +
        `(http://localhost:${port}): refused; fetch that URL directly if you trust it`,
    );
    const loop = await cli(['bundle', 'verify', `${proxy.url}/loop`, '--jwks', jwksFile], env);
    expect(loop.err).toBe(`error ERR_BUNDLE_NOT_FOUND: bundle ${proxy.url}/loop: more than 3 redirects`);
  });

  it('fails a genuine bundle served in place of the one its link names (replayed)', async () => {
    const s = sealedOnce;
    const { env } = await reviewer();
    const replaying = keep(
      await serveRaw((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(s.text);
      }),
    );
    const jwks = await writeJson(await tempDir(), 'jwks.json', jwksOf(s));
    const asked = 'pb_BBBBBBBBBBBBBBBBBBBBBB';
    const res = await cli(
      ['bundle', 'verify', `${replaying.url}/v1/bundles/${asked}`, '--jwks', jwks, ...GATEWAY],
      env,
    );
    expect(res.code).toBe(1);
    expect(res.out).toBe(`FAIL BUNDLE_ID_MISMATCH: asked for ${asked} but got ${s.bundleId}`);
  });

  it('names what went wrong fetching (404, DNS, TLS, refused, scheme) and never prints credentials or the query', async () => {
    const { env } = await reviewer();
    const jwks = await writeJson(await tempDir(), 'jwks.json', { keys: [newKey().publicJwk] });
    const server = keep(
      await serveRaw((_req, res) => {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"ERR_BUNDLE_NOT_FOUND"}}');
      }),
    );
    const closed = await serveRaw(() => {});
    await closed.close();
    const host = new URL(server.url).host;
    const cases: [string, string][] = [
      [
        `${server.url}/v1/bundles/pb_CCCCCCCCCCCCCCCCCCCCCC?token=s3cr3t`,
        `error ERR_BUNDLE_NOT_FOUND: bundle ${server.url}/v1/bundles/pb_CCCCCCCCCCCCCCCCCCCCCC?…: not found (HTTP 404)`,
      ],
      [
        'https://no-such-host.invalid/v1/bundles/pb_x',
        'error ERR_BUNDLE_NOT_FOUND: bundle https://no-such-host.invalid/v1/bundles/pb_x: cannot resolve host no-such-host.invalid',
      ],
      [
        `https://${host}/v1/bundles/pb_x`,
        `error ERR_BUNDLE_NOT_FOUND: bundle https://${host}/v1/bundles/pb_x: TLS with ${host} failed`,
      ],
      [
        `${closed.url}/v1/bundles/pb_x`,
        `error ERR_BUNDLE_NOT_FOUND: bundle ${closed.url}/v1/bundles/pb_x: connection refused by ${new URL(closed.url).host}`,
      ],
      ['ftp://example.com/pb_x', 'error ERR_VALIDATION: the bundle URL must be http(s), not ftp:'],
      [
        `http://reviewer:s3cr3t@${host}/v1/bundles/pb_x`,
        'error ERR_VALIDATION: the bundle URL carries credentials: refused (they are not shown)',
      ],
    ];
    for (const [url, err] of cases) {
      const res = await cli(['bundle', 'verify', url, '--jwks', jwks], env);
      expect(res.code).toBe(1);
      expect(res.out).toBe('');
      expect(res.err.startsWith(err), res.err).toBe(true);
      expect(res.err).not.toContain('s3cr3t');
    }
  });

  it('gives up on a server that never answers, in bounded time', async () => {
    const silent = keep(await serveRaw(() => {}));
    const url = `${silent.url}/v1/bundles/pb_DDDDDDDDDDDDDDDDDDDDDD`;
    await expect(
      fetchSource(new URL(url), {
        what: 'bundle',
        accept: 'application/json',
        failure: 'ERR_BUNDLE_NOT_FOUND',
        limits: { timeoutMs: 100 },
      }),
    ).rejects.toMatchObject({
      code: 'ERR_BUNDLE_NOT_FOUND',
      message: `bundle ${url}: no complete answer within 0.1 s`,
    });
  });

  it('refuses a JWKS it cannot fully understand, naming the key, never echoing a private member', async () => {
    const { env } = await reviewer();
    const dir = await tempDir();
    const bundle = await writeJson(dir, 'bundle.json', {});
    const key = newKey().publicJwk;
    const secret = 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A';
    const cases: [unknown, string][] = [
      [
        { keys: [{ kty: 'RSA', n: 'AQAB', e: 'AQAB' }] },
        'keys[0] is not an Ed25519 key (kty OKP, crv Ed25519)',
      ],
      [{ keys: [key, { ...key, d: secret }] }, 'keys[1] holds private key material'],
      [{ keys: [{ ...key, x: 'AAAA' }] }, 'keys[0] has an x that is not a 32-byte key'],
      [
        { keys: [{ ...key, retired_at: 'last tuesday' }] },
        'keys[0] has a retired_at that is not an RFC 3339 date-time',
      ],
      [{ keys: [{ ...key, use: 'enc' }] }, 'keys[0] is not a signing key (use)'],
      [{ keys: [] }, 'lists no keys'],
      [[key], 'is not a JWKS: {"keys":[…]}'],
    ];
    for (const [i, [jwks, problem]] of cases.entries()) {
      const file = await writeJson(dir, `jwks${i}.json`, jwks);
      const res = await cli(['bundle', 'verify', bundle, '--jwks', file], env);
      expect(res.code).toBe(1);
      expect(res.err).toBe(
        problem.startsWith('keys[')
          ? `error ERR_KEY_INVALID: jwks ${file}: ${problem}`
          : `error ERR_KEY_INVALID: jwks ${file} ${problem}`,
      );
      expect(res.err + res.out).not.toContain(secret);
    }
    const notJson = await writeJson(dir, 'jwks.txt', 'not json');
    expect((await cli(['bundle', 'verify', bundle, '--jwks', notJson], env)).err).toBe(
      `error ERR_KEY_INVALID: ${notJson} is not JSON`,
    );
  });
});
