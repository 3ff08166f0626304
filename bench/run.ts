/**
 * `npm run bench`: each product figure next to the raw limit measured in the same run, as
 * JSON. Uses PostgreSQL when DATABASE_URL is set, otherwise in-memory PGlite.
 */
import { createHash, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CompactSign, compactVerify, importJWK } from 'jose';
import { sql } from 'kysely';
import { buildApp } from '../src/app.js';
import { systemClock } from '../src/clock.js';
import { sealEnvelope, verifyEnvelope } from '../src/crypto/envelope.js';
import { jcsHashB64u } from '../src/crypto/hash.js';
import { openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { createLogger } from '../src/logger.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { hashPolicy } from '../src/policy/hash-policy.js';
import { PolicyService } from '../src/policy/policy-service.js';
import { buildKeyRing } from '../src/tokens/key-ring.js';
import { generateSigningJwk, signingKeyFromJwk } from '../src/tokens/signing-key.js';
import { engineFor } from '../src/runtime.js';
import { benchBot } from './bot-bench.js';
import { benchEngine } from './engine-bench.js';
import { measure } from './measure.js';
import { createScratchDatabase } from './scratch-database.js';

const budgetMs = Number(process.argv.find((a) => a.startsWith('--budget-ms='))?.split('=')[1] ?? 1500);
const databaseUrl = process.env.DATABASE_URL || null;
const policiesDir = path.join(PACKAGE_ROOT, 'policies');

const jwk = generateSigningJwk();
const key = signingKeyFromJwk(jwk, 'bench');
const joseKey = await importJWK({ ...jwk, alg: 'EdDSA' }, 'EdDSA');
const josePublic = await importJWK({ kty: 'OKP', crv: 'Ed25519', x: jwk.x, alg: 'EdDSA' }, 'EdDSA');

// The largest shipped policy is the realistic worst case for hashing.
const policyFile = (await fs.readdir(policiesDir))
  .filter((f) => f.endsWith('.json') && f !== 'groups.json' && !f.endsWith('.schema.json'))
  .map((f) => path.join(policiesDir, f));
const sizes = await Promise.all(policyFile.map(async (f) => [f, (await fs.stat(f)).size] as const));
const largest = sizes.sort((a, b) => b[1] - a[1])[0]![0];
const policy = JSON.parse(await fs.readFile(largest, 'utf8'));
const hashed = hashPolicy(policy);
const envelope = sealEnvelope({
  type: 'work_policy_contract',
  payload: policy,
  payloadHashB64u: hashed.hash,
  key,
  issuedAt: new Date(),
});
const hashBytes = Buffer.from(hashed.hash);
const rawSig = cryptoSign(null, hashBytes, key.privateKey);
const joseJws = await new CompactSign(hashBytes).setProtectedHeader({ alg: 'EdDSA' }).sign(joseKey);

const crypto = {
  policy_hash: {
    what: `JCS + SHA-256 of ${path.basename(largest)} (${hashed.canonical.length} bytes canonical)`,
    ours: await measure(() => hashPolicy(policy), budgetMs),
    raw_sha256_of_canonical_text: await measure(
      () => createHash('sha256').update(hashed.canonical).digest(),
      budgetMs,
    ),
  },
  envelope_sign: {
    what: 'sign a WPC envelope (Ed25519 over payload_hash_b64u)',
    ours: await measure(
      () =>
        sealEnvelope({
          type: 'work_policy_contract',
          payload: policy,
          payloadHashB64u: hashed.hash,
          key,
          issuedAt: new Date(),
        }),
      budgetMs,
    ),
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

// Never write into the database DATABASE_URL names: measure in a scratch database on its server.
const scratch = databaseUrl ? await createScratchDatabase(databaseUrl) : null;
const database = await openDatabase(
  scratch ? { kind: 'postgres', url: scratch.url } : { kind: 'pglite-memory' },
);
const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'claw-bench-'));
try {
  const { db } = database;
  await migrateToLatest(db);
  const keyRing = buildKeyRing(key, []);
  const log = createLogger('silent');
  const policies = new PolicyService({ db, keyRing, clock: systemClock, log, policiesDir });
  await policies.reload();
  // First, on the fresh database: the bot through the sandbox (later figures leave jobs behind).
  const bot = await benchBot({
    db,
    keyRing,
    policies,
    log,
    rounds: Number(process.argv.find((a) => a.startsWith('--bot-rounds='))?.split('=')[1] ?? 3),
    chatter: Number(process.argv.find((a) => a.startsWith('--chatter='))?.split('=')[1] ?? 2000),
  });
  // Throughput, not the limiter's budget, is measured: the limiter runs, with budgets no loop reaches.
  const unlimited = Number.MAX_SAFE_INTEGER;
  const app = buildApp({
    db,
    keyRing,
    policies,
    log,
    rateLimits: { perCaller: unlimited, perAddress: unlimited, failedAuth: unlimited },
  });
  await app.ready();
  await sql`create temporary table if not exists bench_commit (id serial primary key, v text not null)`.execute(
    db,
  );

  const http = {
    what: `GET /v1/wpc/:hash through fastify inject (${database.kind}): select, re-hash, verify signature, serialize`,
    ours: await measure(async () => {
      const res = await app.inject(`/v1/wpc/${hashed.hash}`);
      if (res.statusCode !== 200) throw new Error(`unexpected ${res.statusCode}`);
    }, budgetMs),
    raw_primary_key_select: await measure(
      () =>
        db
          .selectFrom('wpc_registry')
          .selectAll()
          .where('policy_hash_b64u', '=', hashed.hash)
          .executeTakeFirstOrThrow(),
      budgetMs,
    ),
    raw_single_row_commit: await measure(
      () => db.transaction().execute((trx) => sql`insert into bench_commit (v) values ('x')`.execute(trx)),
      budgetMs,
    ),
    healthz: await measure(() => app.inject('/healthz'), budgetMs),
  };
  await app.close();

  const engine = engineFor({ db, keyRing, clock: systemClock, log, gatewaySignerDids: [] }, policies);
  const tokens = await benchEngine(
    engine,
    budgetMs,
    Number(process.argv.find((a) => a.startsWith('--samples='))?.split('=')[1] ?? 100),
  );
  const approval = tokens.approval_to_committed_token;
  const raw_commit = await measure(
    () => db.transaction().execute((trx) => sql`insert into bench_commit (v) values ('x')`.execute(trx)),
    budgetMs,
  );

  process.stdout.write(
    `${JSON.stringify(
      {
        bench: 'claw-approvals core',
        at: new Date().toISOString(),
        machine: { node: process.version, cpus: os.cpus().length, platform: `${os.platform()}-${os.arch()}` },
        database: database.kind === 'postgres' ? 'postgres (DATABASE_URL)' : 'pglite (in memory)',
        budget_ms_per_figure: budgetMs,
        crypto,
        http,
        tokens: {
          cst_mint: tokens.cst_mint,
          cst_introspect: tokens.cst_introspect,
          approval_to_committed_token: { ...approval, raw_single_row_commit: raw_commit },
        },
        bot: {
          ...bot,
          raw_single_row_commit: raw_commit,
        },
      },
      null,
      2,
    )}\n`,
  );
} finally {
  await database.close();
  await scratch?.drop();
  await fs.rm(dataDir, { recursive: true, force: true });
}
