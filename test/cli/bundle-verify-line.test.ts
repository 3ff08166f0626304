import { sql } from 'kysely';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { endedMessage } from '../../src/presenter/messages.js';
import { loadConfig } from '../../src/config.js';
import { jwksRoutes } from '../../src/http/routes/jwks.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { engineFor, engineParts, openRuntime } from '../../src/runtime.js';
import { buildKeyRing } from '../../src/tokens/key-ring.js';
import { cli, stateEnv } from '../helpers/cli.js';
import { dialectName, type TestDb } from '../helpers/db.js';
import { copyPolicies, tempDir } from '../helpers/fs.js';
import { silentLogger } from '../helpers/log.js';
import { testGateway } from '../helpers/receipts.js';
import { newKey } from '../helpers/state.js';
import { runAndRevoke, sealedJob, serveApp } from './bundle-verify-fixture.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const TSX = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs');
const PUBLIC = 'https://claw.example.test/';
const ended = { jobId: 42, status: 'completed' as const, reason: 'all steps done', bundleId: 'pb_x' };

const open: { close(): Promise<void> }[] = [];
const dbs: (TestDb | null)[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
  await Promise.all(dbs.splice(0).map((d) => d?.close()));
});

const verifyLine = (text: string) => text.split('\n')[2]!;

/** Runs `claw-approvals <args>` as its own process, in `dir`, with an environment of only PATH and HOME. */
function runAlone(args: string[], dir: string): Promise<{ code: number | null; out: string; err: string }> {
  const proc = spawn(process.execPath, ['--import', TSX, path.join(ROOT, 'src/main.ts'), ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', HOME: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += String(d)));
  proc.stderr.on('data', (d) => (err += String(d)));
  return new Promise((resolve) => proc.on('close', (code) => resolve({ code, out, err })));
}

describe('the thread’s Verify line', () => {
  it('with a public URL: the bundle link and the server JWKS (and the gateways whose receipts count)', () => {
    const gateways = [testGateway.did, 'did:key:z6MkfF4ykuxdK3Cea9xDqWgLLgMBvxcypy6Tv1K45Eahxy3m'];
    expect(verifyLine(endedMessage(ended, PUBLIC, gateways))).toBe(
      'Verify anywhere: `claw-approvals bundle verify https://claw.example.test/v1/bundles/pb_x ' +
        '--jwks https://claw.example.test/.well-known/jwks.json ' +
        `${[...gateways]
          .sort()
          .map((g) => `--gateway ${g}`)
          .join(' ')}\``,
    );
    expect(verifyLine(endedMessage(ended, PUBLIC))).toBe(
      'Verify anywhere: `claw-approvals bundle verify https://claw.example.test/v1/bundles/pb_x ' +
        '--jwks https://claw.example.test/.well-known/jwks.json`',
    );
  });

  it('without a public URL, or with a local one, it says the command works only on the server machine', () => {
    expect(verifyLine(endedMessage(ended, null))).toBe(
      "Verify on the server's machine (no public URL is set, so there is no link to check): " +
        '`claw-approvals bundle verify pb_x`',
    );
    for (const local of ['http://localhost:8080', 'http://127.0.0.1:8080/', 'http://[::1]:8080']) {
      const base = local.replace(/\/$/, '');
      expect(verifyLine(endedMessage(ended, local))).toBe(
        "Verify on the server's machine (its public URL is a local address): " +
          `\`claw-approvals bundle verify ${base}/v1/bundles/pb_x --jwks ${base}/.well-known/jwks.json\``,
      );
    }
  });

  it('works as printed, run as its own process in an empty directory with no environment but PATH and HOME', async () => {
    const s = await sealedJob();
    open.push(s);
    const server = await serveApp(s.engine);
    open.push(server);
    const line = verifyLine(endedMessage({ ...ended, bundleId: s.bundleId }, server.url, [testGateway.did]));
    const command = /`([^`]+)`$/.exec(line)![1]!.split(' ');
    expect(command.slice(0, 3)).toEqual(['claw-approvals', 'bundle', 'verify']);
    const dir = await tempDir('claw-laptop-');
    const res = await runAlone(command.slice(1), dir);
    expect(res.err).toBe('');
    expect(res.code).toBe(0);
    expect(res.out).toMatch(
      new RegExp(
        `^OK ${s.bundleId}: signed by ${s.engine.ctx.keyRing.active.did} \\(trusted: jwks ${server.url}/\\.well-known/jwks\\.json\\); .* 1 gateway receipts verified\\n$`,
      ),
    );
    expect(await fs.readdir(dir)).toEqual([]);
    // A process of its own starts tsx and the whole CLI: slow on a busy machine, not a measurement.
  }, 120_000);
});

describe('/.well-known/jwks.json publishes rotation dates', () => {
  it('a retired key with its retired_at, never a private member, never a retired key without a readable date', async () => {
    const active = newKey();
    const retired = newKey();
    const undated = newKey();
    const ring = buildKeyRing(active, [
      { ...retired.publicJwk, retired_at: '2026-02-01T00:00:00Z' },
      { ...undated.publicJwk, retired_at: 'someday' },
    ]);
    const app = Fastify();
    jwksRoutes(app, { keyRing: ring });
    open.push(app);
    const res = await app.inject('/.well-known/jwks.json');
    expect(res.json()).toEqual({
      keys: [active.publicJwk, { ...retired.publicJwk, retired_at: '2026-02-01T00:00:00.000Z' }],
    });
    expect(res.body).not.toMatch(/"(d|p|q|dp|dq|qi|k)"/);
    // The server's own rule agrees with what it publishes.
    expect(ring.trusts(retired.did, new Date('2026-02-01T00:00:00.000Z'))).toBe(true);
    expect(ring.trusts(retired.did, new Date('2026-02-01T00:00:00.001Z'))).toBe(false);
    expect(ring.trusts(undated.did, new Date('2000-01-01T00:00:00Z'))).toBe(false);
  });
});

describe(`bundle verify <pb_id> on the server machine (${dialectName})`, () => {
  it('trusts this server’s key ring and asks its database: a CST that is not the one issued fails', async () => {
    const s = await stateEnv({ GATEWAY_SIGNER_DIDS: testGateway.did });
    dbs.push(s.db);
    const policiesDir = await copyPolicies();
    const withEngine = async <T>(fn: (ctx: ReturnType<typeof engineFor>) => Promise<T>): Promise<T> => {
      const rt = await openRuntime(loadConfig(s.env), silentLogger());
      try {
        const parts = engineParts(rt);
        const policies = new PolicyService({ ...parts, policiesDir });
        await policies.reload();
        return await fn(engineFor(parts, policies));
      } finally {
        await rt.close();
      }
    };
    const { bundleId, text } = await withEngine(runAndRevoke);
    const ok = await cli(['bundle', 'verify', bundleId], s.env);
    expect(ok.err).toBe('');
    expect(ok.out).toMatch(
      new RegExp(`^OK ${bundleId}: signed by \\S+ \\(trusted: key ring of this server\\); `),
    );

    const { jti } = JSON.parse(text).payload.metadata.claw_approvals.steps.find(
      (st: { cst: unknown }) => st.cst !== null,
    ).cst;
    await withEngine((ctx) =>
      ctx.db
        .updateTable('tokens')
        .set({ token_hash: '0'.repeat(64) })
        .where('jti', '=', jti)
        .execute(),
    );
    const bad = await cli(['bundle', 'verify', bundleId, '--json'], s.env);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.out)).toMatchObject({
      verdict: 'FAIL',
      reason: 'TOKEN_BINDING_MISMATCH',
      cbReason: null,
      message: `CST ${jti} is not the token issued`,
      target: { kind: 'database', ref: bundleId },
    });

    // The pinned policy's row no longer verifies: the verifier gets no signed policy (its rule
    // check is not made) and the database check names the registry's refusal, before the tokens.
    const { policy_hash_b64u: pinned } = JSON.parse(text).payload.metadata.claw_approvals.policy;
    await withEngine((ctx) =>
      ctx.db.transaction().execute(async (trx) => {
        await sql`alter table wpc_registry disable trigger wpc_registry_immutable`.execute(trx);
        await sql`update wpc_registry set canonical_payload = replace(canonical_payload, '"required_approvals":2', '"required_approvals":1')
          where policy_hash_b64u = ${pinned}`.execute(trx);
        await sql`alter table wpc_registry enable trigger wpc_registry_immutable`.execute(trx);
      }),
    );
    const unverifiable = await cli(['bundle', 'verify', bundleId, '--json'], s.env);
    expect(unverifiable.code).toBe(1);
    const out = JSON.parse(unverifiable.out);
    expect(out).toMatchObject({
      verdict: 'FAIL',
      reason: 'POLICY_UNVERIFIABLE',
      message: expect.stringContaining(pinned),
    });
    expect(out.checks).toContainEqual(
      expect.objectContaining({
        id: 'ours.policy_rules',
        ok: true,
        message: expect.stringMatching(/^not made/),
      }),
    );
    // Three runtimes over an embedded database on disk: slow on a busy machine, not a measurement.
  }, 120_000);
});
