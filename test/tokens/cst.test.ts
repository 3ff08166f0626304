import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { canonicalize as independentJcs } from 'json-canonicalize';
import { decodeJwt, decodeProtectedHeader, type JWTPayload, SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import { claimToken } from '../../src/jobs/agent-job-ops.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { endJobByCommand } from '../../src/jobs/revoke-job.js';
import type { CstClaims } from '../../src/tokens/cst-claims.js';
import { issueToken } from '../../src/tokens/issue-token.js';
import type { SigningKey } from '../../src/tokens/signing-key.js';
import { introspectToken, redeemToken, revokeToken } from '../../src/tokens/token-lifecycle.js';
import { CLOCK_SKEW_SECONDS, tokenVerifier } from '../../src/tokens/verify-token.js';
import { createTestEngine, editJson, OPS, opsJob, U, type TestEngine } from '../helpers/engine.js';
import { newKey, ringOf, testClock } from '../helpers/state.js';

/** SPEC section 4, written out: the CST carries these claims and no others. */
const SPEC_CLAIMS = [
  'aud',
  'exp',
  'iat',
  'jti',
  'mission_id',
  'nonce',
  'policy_hash_b64u',
  'scope',
  'sub',
  'token_scope_hash_b64u',
  'token_version',
];

const POLICY_HASH = 'x'.repeat(43);
const PLAN_HASH = 'p'.repeat(43);
const scope = {
  sub: 'agent:ops-mattermost-1',
  aud: 'clawproxy',
  scope: ['tool:send_message', 'step:post-summary', `plan:${PLAN_HASH}`, 'proxy:call'],
  policy_hash_b64u: POLICY_HASH,
  mission_id: 'job:42',
};

const at = (seconds: number) => new Date(testClock().getTime() + seconds * 1000);

/** The SPEC formula, computed with an independent JCS implementation and node:crypto. */
function specScopeHash(c: {
  sub: string;
  aud: string | string[];
  scope: string[];
  policy_hash_b64u: string;
  mission_id: string;
}) {
  const sortedUnique = (v: string[]) => [...new Set(v)].sort();
  const body = {
    token_version: '1',
    sub: c.sub,
    aud: sortedUnique(typeof c.aud === 'string' ? [c.aud] : c.aud),
    scope: sortedUnique(c.scope),
    policy_hash_b64u: c.policy_hash_b64u,
    mission_id: c.mission_id,
  };
  return createHash('sha256').update(independentJcs(body), 'utf8').digest('base64url');
}

async function issue(key: SigningKey, issuedAt = testClock(), ttlSeconds = 600) {
  return issueToken({ key, scope, issuedAt, ttlSeconds });
}

/** Signs any payload and header with a real key: the verifier, not the signature, must refuse it. */
async function sign(key: SigningKey, payload: JWTPayload, header: Record<string, unknown> = {}) {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: key.kid, ...header })
    .sign(key.privateKey);
}

const b64json = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

describe('issueToken', () => {
  it('carries exactly the SPEC claim set, with the SPEC header', async () => {
    const key = newKey();
    const t = await issue(key);
    const claims = decodeJwt(t.compact);
    expect(Object.keys(claims).sort()).toEqual(SPEC_CLAIMS);
    expect(claims).toEqual(t.claims);
    expect(decodeProtectedHeader(t.compact)).toEqual({ alg: 'EdDSA', typ: 'JWT', kid: key.kid });
    expect(key.kid).toBe(createHash('sha256').update(key.publicRaw).digest('hex').slice(0, 16));
    expect(t.kid).toBe(key.kid);
    expect(claims).toMatchObject({
      token_version: '1',
      sub: scope.sub,
      aud: 'clawproxy',
      iat: Math.floor(testClock().getTime() / 1000),
      exp: Math.floor(testClock().getTime() / 1000) + 600,
      mission_id: 'job:42',
      policy_hash_b64u: POLICY_HASH,
    });
    expect(claims.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(claims.nonce).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(t.tokenHash).toBe(createHash('sha256').update(t.compact).digest('hex'));
  });

  it('computes token_scope_hash_b64u by the SPEC formula', async () => {
    const t = await issue(newKey());
    expect(t.claims.token_scope_hash_b64u).toBe(specScopeHash(scope));
    expect(t.claims.token_scope_hash_b64u).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('the scope hash ignores order and duplicates of scope entries, and nothing else (property)', async () => {
    const key = newKey();
    const entry = fc.stringMatching(/^[a-z]{1,6}:[a-z0-9-]{1,10}$/);
    await fc.assert(
      fc.asyncProperty(
        fc.array(entry, { minLength: 1, maxLength: 6 }),
        fc.string({ maxLength: 12 }),
        async (entries, sub) => {
          const shuffled = [...entries, ...entries].reverse();
          const a = await issueToken({
            key,
            scope: { ...scope, sub, scope: entries },
            issuedAt: testClock(),
            ttlSeconds: 60,
          });
          const b = await issueToken({
            key,
            scope: { ...scope, sub, scope: shuffled },
            issuedAt: testClock(),
            ttlSeconds: 60,
          });
          return (
            a.claims.token_scope_hash_b64u === b.claims.token_scope_hash_b64u &&
            a.claims.token_scope_hash_b64u === specScopeHash({ ...scope, sub, scope: entries }) &&
            a.claims.jti !== b.claims.jti
          );
        },
      ),
      { numRuns: 40 },
    );
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses a TTL of %s', async (ttlSeconds) => {
    await expect(issue(newKey(), testClock(), ttlSeconds)).rejects.toThrow(RangeError);
  });
});

describe('tokenVerifier', () => {
  const key = newKey();
  const verifier = tokenVerifier(ringOf(key));
  const now = at(60);

  async function validClaims(): Promise<CstClaims> {
    return (await issue(key)).claims;
  }

  it('accepts a token it issued and returns its claims', async () => {
    const t = await issue(key);
    await expect(verifier.verify(t.compact, { now })).resolves.toEqual(t.claims);
    await expect(verifier.verify(t.compact, { now, audience: 'clawproxy' })).resolves.toEqual(t.claims);
  });

  it('refuses alg "none"', async () => {
    const claims = await validClaims();
    const unsigned = `${b64json({ alg: 'none', typ: 'JWT', kid: key.kid })}.${b64json(claims)}.`;
    await expect(verifier.verify(unsigned, { now })).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' });
  });

  it('refuses HS256, also when keyed with the public key (algorithm confusion)', async () => {
    const claims = await validClaims();
    for (const secret of [
      new Uint8Array(32).fill(7),
      key.publicRaw,
      new TextEncoder().encode(key.publicJwk.x),
    ]) {
      const hs = await new SignJWT({ ...claims })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: key.kid })
        .sign(secret);
      await expect(verifier.verify(hs, { now })).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' });
    }
  });

  it('refuses an unknown kid, a missing kid, and a known kid over another key', async () => {
    const stranger = newKey();
    const claims = await validClaims();
    const cases = [
      await sign(stranger, { ...claims }),
      await sign(key, { ...claims }, { kid: undefined }),
      await sign(stranger, { ...claims }, { kid: key.kid }),
      await sign(key, { ...claims }, { kid: 'ffffffffffffffff' }),
    ];
    for (const token of cases) {
      await expect(verifier.verify(token, { now })).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' });
    }
  });

  it('refuses a typ other than JWT', async () => {
    const token = await sign(key, { ...(await validClaims()) }, { typ: 'at+jwt' });
    await expect(verifier.verify(token, { now })).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' });
  });

  it('refuses the wrong audience', async () => {
    const t = await issue(key);
    await expect(verifier.verify(t.compact, { now, audience: 'billing' })).rejects.toMatchObject({
      code: 'ERR_TOKEN_INVALID',
    });
  });

  it(`allows ${CLOCK_SKEW_SECONDS}s of skew after expiry and no more`, async () => {
    const t = await issue(key, testClock(), 600);
    expect(CLOCK_SKEW_SECONDS).toBe(30);
    await expect(verifier.verify(t.compact, { now: at(599) })).resolves.toMatchObject({ jti: t.claims.jti });
    await expect(verifier.verify(t.compact, { now: at(600 + 29) })).resolves.toMatchObject({
      jti: t.claims.jti,
    });
    await expect(verifier.verify(t.compact, { now: at(600 + 31) })).rejects.toMatchObject({
      code: 'ERR_TOKEN_EXPIRED',
    });
    await expect(verifier.verify(t.compact, { now: at(86_400) })).rejects.toMatchObject({
      code: 'ERR_TOKEN_EXPIRED',
    });
  });

  it('allows the same skew for a token issued in the future, and no more', async () => {
    const soon = await issue(key, at(60 + 29));
    const later = await issue(key, at(60 + 31));
    await expect(verifier.verify(soon.compact, { now })).resolves.toMatchObject({ jti: soon.claims.jti });
    await expect(verifier.verify(later.compact, { now })).rejects.toMatchObject({
      code: 'ERR_TOKEN_INVALID',
    });
  });

  it('refuses claims a CST must not have, and missing or mistyped ones', async () => {
    const claims = await validClaims();
    const { nonce: _nonce, ...withoutNonce } = claims;
    const variants: JWTPayload[] = [
      { ...claims, admin: true },
      { ...claims, nbf: claims.iat },
      { ...claims, owner_did: 'did:key:z6Mk' },
      withoutNonce,
      { ...claims, token_version: '2' },
      { ...claims, aud: ['clawproxy'] },
      { ...claims, scope: [] },
      { ...claims, scope: 'step:post-summary' },
    ];
    for (const payload of variants) {
      await expect(verifier.verify(await sign(key, payload), { now })).rejects.toMatchObject({
        code: 'ERR_TOKEN_INVALID',
      });
    }
  });

  it('refuses a scope hash that does not match the claims', async () => {
    const claims = await validClaims();
    const variants: JWTPayload[] = [
      { ...claims, token_scope_hash_b64u: 'A'.repeat(43) },
      { ...claims, scope: [...claims.scope, 'tool:exec'] },
      { ...claims, sub: 'agent:ops-other' },
      { ...claims, mission_id: 'job:43' },
      { ...claims, policy_hash_b64u: 'y'.repeat(43) },
    ];
    for (const payload of variants) {
      await expect(verifier.verify(await sign(key, payload), { now })).rejects.toMatchObject({
        code: 'ERR_TOKEN_INVALID',
      });
    }
    // Re-signed with a recomputed hash, the same change verifies: the hash is what binds the scope.
    const widened = { ...claims, scope: [...claims.scope, 'tool:exec'] };
    const rehashed = { ...widened, token_scope_hash_b64u: specScopeHash(widened) };
    await expect(verifier.verify(await sign(key, rehashed), { now })).resolves.toMatchObject({
      scope: widened.scope,
    });
  });

  it('refuses a payload swapped under a valid signature', async () => {
    const t = await issue(key);
    const [h, , s] = t.compact.split('.');
    const forged = `${h}.${b64json({ ...t.claims, scope: [...t.claims.scope, 'tool:exec'] })}.${s}`;
    await expect(verifier.verify(forged, { now })).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' });
  });

  it('refuses garbage and oversized tokens', async () => {
    for (const token of ['', 'abc', 'a.b.c', `${'a'.repeat(3000)}.${'b'.repeat(3000)}.c`]) {
      await expect(verifier.verify(token, { now })).rejects.toMatchObject({ code: 'ERR_TOKEN_INVALID' });
    }
  });

  it('trusts a retired key only for tokens issued up to its retirement', async () => {
    // ringOf dates the retirement at testClock().
    const old = newKey();
    const active = newKey();
    const rotated = tokenVerifier(ringOf(active, old));
    const before = await issue(old, at(-120));
    const atRetirement = await issue(old, at(0));
    const after = await issue(old, at(1));
    await expect(rotated.verify(before.compact, { now: at(5) })).resolves.toMatchObject({
      jti: before.claims.jti,
    });
    await expect(rotated.verify(atRetirement.compact, { now: at(5) })).resolves.toMatchObject({
      jti: atRetirement.claims.jti,
    });
    await expect(rotated.verify(after.compact, { now: at(5) })).rejects.toMatchObject({
      code: 'ERR_TOKEN_INVALID',
    });
    const fresh = await issue(active, at(1));
    await expect(rotated.verify(fresh.compact, { now: at(5) })).resolves.toMatchObject({
      jti: fresh.claims.jti,
    });
    // A ring that no longer lists the old key knows nothing it signed.
    await expect(tokenVerifier(ringOf(active)).verify(before.compact, { now: at(5) })).rejects.toMatchObject({
      code: 'ERR_TOKEN_INVALID',
    });
  });
});

describe('minted CSTs and their lifecycle', () => {
  let e: TestEngine | undefined;
  afterEach(async () => {
    await e?.close();
    e = undefined;
  });

  const claim = (ctx: EngineContext, jobId: number, step: string, agentId = OPS.executor) =>
    claimToken(ctx, { jobId, step, agentId });

  async function approvedJob(ctx: EngineContext) {
    const job = await opsJob(ctx);
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });
    const q = await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.chioma,
    });
    expect(q.code).toBe('QUORUM_MET');
    return job;
  }

  it('binds the token to the step, its job, plan and pinned policy, within the policy TTL', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await approvedJob(ctx);
    const c = await claim(ctx, job.jobId, 'post-summary');
    const claims = decodeJwt(c.token) as unknown as CstClaims;
    expect(Object.keys(claims).sort()).toEqual(SPEC_CLAIMS);
    expect(decodeProtectedHeader(c.token)).toEqual({ alg: 'EdDSA', typ: 'JWT', kid: ctx.keyRing.active.kid });
    expect(claims).toMatchObject({
      sub: OPS.executor,
      aud: 'clawproxy',
      mission_id: `job:${job.jobId}`,
      policy_hash_b64u: job.policyHash,
      jti: c.jti,
    });
    expect([...claims.scope].sort()).toEqual(
      ['proxy:call', 'step:post-summary', 'tool:send_message', `plan:${job.planHash}`].sort(),
    );
    expect(claims.token_scope_hash_b64u).toBe(specScopeHash(claims));
    expect(claims.exp - claims.iat).toBe(900);
    const row = await ctx.db
      .selectFrom('tokens')
      .selectAll()
      .where('jti', '=', c.jti)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({
      job_id: job.jobId,
      step_id: 'post-summary',
      sub: OPS.executor,
      kid: ctx.keyRing.active.kid,
      token_hash: createHash('sha256').update(c.token).digest('hex'),
      scope_hash_b64u: claims.token_scope_hash_b64u,
      compact: null,
    });
  });

  it('caps the TTL at the policy maximum and at the job deadline', async () => {
    e = await createTestEngine({
      edit: (dir) =>
        editJson(dir, 'mattermost-agent-prod.json', (p) => {
          (p.token_requirements as { cst_ttl_seconds_max: number }).cst_ttl_seconds_max = 120;
        }),
    });
    const { ctx } = e;
    const job = await opsJob(ctx);
    const auto = decodeJwt((await claim(ctx, job.jobId, 'search-kb')).token);
    expect(auto.exp! - auto.iat!).toBe(120);

    e.clock.advance(3600 - 50);
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.chioma });
    const gated = decodeJwt((await claim(ctx, job.jobId, 'post-summary')).token);
    expect(gated.exp! - gated.iat!).toBe(50);
    expect(gated.exp! * 1000).toBe(job.expiresAt.getTime());
  });

  it('introspects, redeems once, and answers a second redemption with ERR_TOKEN_REPLAYED', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const { token } = await claim(ctx, job.jobId, 'search-kb');
    await expect(introspectToken(ctx, token)).resolves.toMatchObject({
      active: true,
      jobId: job.jobId,
      step: 'search-kb',
    });
    await expect(introspectToken(ctx, token, { audience: 'clawproxy' })).resolves.toMatchObject({
      active: true,
    });
    await expect(introspectToken(ctx, token, { audience: 'billing' })).resolves.toMatchObject({
      active: false,
      code: 'ERR_TOKEN_INVALID',
    });
    await expect(redeemToken(ctx, token)).resolves.toMatchObject({ jobId: job.jobId, step: 'search-kb' });
    await expect(redeemToken(ctx, token)).rejects.toMatchObject({ code: 'ERR_TOKEN_REPLAYED' });
    await expect(introspectToken(ctx, token)).resolves.toMatchObject({
      active: false,
      code: 'ERR_TOKEN_REPLAYED',
    });
    const events = await ctx.db
      .selectFrom('job_events')
      .select('event_type')
      .where('job_id', '=', job.jobId)
      .where('event_type', '=', 'token_redeemed')
      .execute();
    expect(events).toHaveLength(1);
  });

  it('a token revoked by jti fails introspection and redemption, and ends its job', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const c = await claim(ctx, job.jobId, 'search-kb');
    const r = await revokeToken(ctx, { jti: c.jti, reason: 'leaked', actor: { agentId: OPS.executor } });
    expect(r).toEqual({ jti: c.jti, jobId: job.jobId, alreadyRevoked: false, jobEnded: true });
    await expect(introspectToken(ctx, c.token)).resolves.toMatchObject({
      active: false,
      code: 'ERR_TOKEN_REVOKED',
    });
    await expect(redeemToken(ctx, c.token)).rejects.toMatchObject({ code: 'ERR_TOKEN_REVOKED' });
    expect(await revokeToken(ctx, { jti: c.jti, reason: 'again', actor: { admin: 'ops' } })).toMatchObject({
      alreadyRevoked: true,
    });
    const row = await ctx.db
      .selectFrom('jobs')
      .select('status')
      .where('id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('revoked');
  });

  it('a token revoked by token_hash fails introspection', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const c = await claim(ctx, job.jobId, 'read-runbook');
    const hash = createHash('sha256').update(c.token).digest('hex');
    await revokeToken(ctx, { tokenHash: hash.toUpperCase(), reason: 'rotate', actor: { admin: 'ops' } });
    await expect(introspectToken(ctx, c.token)).resolves.toMatchObject({
      active: false,
      code: 'ERR_TOKEN_REVOKED',
    });
  });

  it('an agent may revoke only its own tokens', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const c = await claim(ctx, job.jobId, 'search-kb');
    await expect(
      revokeToken(ctx, { jti: c.jti, reason: 'x', actor: { agentId: 'agent:ops-other' } }),
    ).rejects.toMatchObject({ code: 'ERR_TOKEN_NOT_FOUND' });
    await expect(
      revokeToken(ctx, { jti: 'nope', reason: 'x', actor: { admin: 'ops' } }),
    ).rejects.toMatchObject({
      code: 'ERR_TOKEN_NOT_FOUND',
    });
    await expect(introspectToken(ctx, c.token)).resolves.toMatchObject({ active: true });
  });

  it('a token is claimed once, only by its executor, only once approved', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    await expect(claim(ctx, job.jobId, 'search-kb', 'agent:ops-other')).rejects.toMatchObject({
      code: 'ERR_JOB_NOT_FOUND',
    });
    await expect(claim(ctx, job.jobId, 'post-summary')).rejects.toMatchObject({ code: 'ERR_STEP_STATE' });
    await expect(claim(ctx, job.jobId, 'no-such-step')).rejects.toMatchObject({ code: 'ERR_STEP_NOT_FOUND' });
    await expect(claim(ctx, job.jobId + 1000, 'search-kb')).rejects.toMatchObject({
      code: 'ERR_JOB_NOT_FOUND',
    });
    await claim(ctx, job.jobId, 'search-kb');
    await expect(claim(ctx, job.jobId, 'search-kb')).rejects.toMatchObject({
      code: 'ERR_TOKEN_ALREADY_CLAIMED',
    });
  });

  it('a claim after the job deadline is refused and seals the job as expired', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const held = await claim(ctx, job.jobId, 'search-kb');
    e.clock.advance(3600);
    await expect(claim(ctx, job.jobId, 'read-runbook')).rejects.toMatchObject({ code: 'ERR_JOB_EXPIRED' });
    const row = await ctx.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('expired');
    expect(row.bundle_id).toMatch(/^pb_/);
    await expect(claim(ctx, job.jobId, 'read-runbook')).rejects.toMatchObject({ code: 'ERR_JOB_EXPIRED' });
    await expect(introspectToken(ctx, held.token)).resolves.toMatchObject({ active: false });
  });

  it('tokens of a revoked job fail introspection, redeemed or not', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await approvedJob(ctx);
    const used = await claim(ctx, job.jobId, 'search-kb');
    await redeemToken(ctx, used.token);
    const held = await claim(ctx, job.jobId, 'post-summary');
    const unclaimed = await ctx.db
      .selectFrom('tokens')
      .select('compact')
      .where('job_id', '=', job.jobId)
      .where('step_id', '=', 'fetch-status')
      .executeTakeFirstOrThrow();
    await endJobByCommand(ctx, {
      kind: 'revoke',
      jobId: job.jobId,
      actor: { kind: 'user', userId: U.erin },
      reason: 'x',
    });
    for (const token of [used.token, held.token, unclaimed.compact!]) {
      await expect(introspectToken(ctx, token)).resolves.toMatchObject({
        active: false,
        code: 'ERR_TOKEN_REVOKED',
      });
    }
    await expect(claim(ctx, job.jobId, 'fetch-status')).rejects.toMatchObject({ code: 'ERR_JOB_REVOKED' });
  });

  it('a redeemed token of a cancelled job is no longer active', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const used = await claim(ctx, job.jobId, 'search-kb');
    await redeemToken(ctx, used.token);
    await endJobByCommand(ctx, {
      kind: 'cancel',
      jobId: job.jobId,
      actor: { kind: 'user', userId: U.grace },
      reason: 'x',
    });
    await expect(introspectToken(ctx, used.token)).resolves.toMatchObject({
      active: false,
      code: 'ERR_JOB_CLOSED',
    });
  });

  it('an expired token fails introspection once the skew has passed', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const { token } = await claim(ctx, job.jobId, 'search-kb');
    e.clock.advance(900 + 29);
    await expect(introspectToken(ctx, token)).resolves.toMatchObject({ active: true });
    e.clock.advance(2);
    await expect(introspectToken(ctx, token)).resolves.toMatchObject({
      active: false,
      code: 'ERR_TOKEN_EXPIRED',
    });
    await expect(redeemToken(ctx, token)).rejects.toMatchObject({ code: 'ERR_TOKEN_EXPIRED' });
  });

  it('a well-signed token this server never issued is not found', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const { token } = await claim(ctx, job.jobId, 'search-kb');
    const claims = decodeJwt(token);
    const copy = await sign(ctx.keyRing.active, { ...claims, jti: '00000000-0000-4000-8000-000000000000' });
    await expect(introspectToken(ctx, copy)).resolves.toMatchObject({
      active: false,
      code: 'ERR_TOKEN_NOT_FOUND',
    });
    await expect(redeemToken(ctx, copy)).rejects.toMatchObject({ code: 'ERR_TOKEN_NOT_FOUND' });
  });

  it('after a key rotation, tokens issued before it stay valid', async () => {
    e = await createTestEngine();
    const job = await opsJob(e.ctx);
    const { token } = await claim(e.ctx, job.jobId, 'search-kb');
    const ring = ringOf(newKey(), e.ctx.keyRing.active);
    const rotated: EngineContext = { ...e.ctx, keyRing: ring, verifier: tokenVerifier(ring) };
    await expect(introspectToken(rotated, token)).resolves.toMatchObject({ active: true });
    await expect(redeemToken(rotated, token)).resolves.toMatchObject({ step: 'search-kb' });
  });
});
