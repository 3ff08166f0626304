/**
 * `npm run bench`: each product figure next to the raw limit measured in the same run, as one
 * JSON document on stdout. PostgreSQL (in scratch databases on the server of BENCH_DATABASE_URL
 * or DATABASE_URL) when a URL is given, and embedded PGlite always. `--check` evaluates issue
 * 13's goals and exits non-zero when one is missed; `--help` lists the options.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { pino } from 'pino';
import { buildApp } from '../src/app.js';
import { systemClock } from '../src/clock.js';
import { type Db, openDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import type { LogLevel } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { PolicyService } from '../src/policy/policy-service.js';
import { engineFor } from '../src/runtime.js';
import { buildKeyRing } from '../src/tokens/key-ring.js';
import { generateSigningJwk, signingKeyFromJwk } from '../src/tokens/signing-key.js';
import { ArgsError, parseArgs, USAGE } from './args.js';
import { benchBot } from './bot-bench.js';
import { checkExitCode, evaluateGoals, formatGoals } from './check.js';
import { benchCrypto, largestPolicy } from './crypto-bench.js';
import { benchEngine } from './engine-bench.js';
import { benchIntrospectHttp } from './http-bench.js';
import { measure } from './measure.js';
import { progress } from './progress.js';
import { createScratchDatabase } from './scratch-database.js';
import { benchServe } from './serve-bench.js';

if (process.argv.includes('--help')) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
let args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof ArgsError)) throw err;
  process.stderr.write(`bench: ${err.message}\n\n${USAGE}\n`);
  process.exit(2);
}

if (args.checkFile) {
  const doc = JSON.parse(await fs.readFile(args.checkFile, 'utf8')) as unknown;
  const goals = evaluateGoals(doc);
  process.stdout.write(formatGoals(goals));
  process.exit(checkExitCode(goals));
}

const { budgetMs, only } = args;
const databaseUrl = process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL || null;
const policiesDir = path.join(PACKAGE_ROOT, 'policies');
const jwk = generateSigningJwk();
const key = signingKeyFromJwk(jwk, 'bench');
const LOG_LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
// BENCH_LOG_LEVEL=warn shows the bench's own server and bot logs, on stderr (stdout is the JSON).
const log = createLogger(
  LOG_LEVELS.find((l) => l === process.env.BENCH_LOG_LEVEL) ?? 'silent',
  pino.destination(2),
);
const started = Date.now();

type Target = 'postgres' | 'pglite';
const targets: Target[] = databaseUrl ? ['postgres', 'pglite'] : ['pglite'];
const main = targets[0]!;
const LABEL: Record<Target, string> = {
  postgres: 'postgres (DATABASE_URL)',
  pglite: 'pglite (temp data dir)',
};

const doc: Record<string, unknown> = {
  bench: 'claw-approvals core',
  at: new Date().toISOString(),
  machine: {
    node: process.version,
    cpus: os.cpus().length,
    platform: `${os.platform()}-${os.arch()}`,
    load_average_at_start: os.loadavg().map((l) => Number(l.toFixed(2))),
  },
  database: LABEL[main],
  sections: [...only],
  budget_ms_per_figure: budgetMs,
};

/** A fresh, migrated database: a scratch database on PostgreSQL's server, or PGlite in a temp dir. */
async function openTarget(target: Target) {
  const scratch = target === 'postgres' ? await createScratchDatabase(databaseUrl!) : null;
  const dataDir = target === 'pglite' ? await fs.mkdtemp(path.join(os.tmpdir(), 'claw-bench-')) : null;
  const database = await openDatabase(
    scratch ? { kind: 'postgres', url: scratch.url } : { kind: 'pglite', dataDir: dataDir! },
  );
  return {
    database,
    async close() {
      await database.close();
      await scratch?.drop();
      if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** BEGIN; INSERT one row; COMMIT, on the same database: the floor of any decision. */
const rawCommit = (db: Db) =>
  measure(
    () => db.transaction().execute((trx) => sql`insert into bench_commit (v) values ('x')`.execute(trx)),
    budgetMs,
  );

const failed: string[] = [];
const sectionSeconds: Record<string, number> = {};
/**
 * Runs one part of the bench. A failure is recorded in the document, in place of its figures, and
 * fails the run (exit 1), while the other parts still run and print.
 */
async function section<T>(name: string, run: () => Promise<T>): Promise<T | { error: string }> {
  progress(name);
  const t0 = Date.now();
  try {
    return await run();
  } catch (err) {
    failed.push(name);
    const message = err instanceof Error ? err.message : String(err);
    progress(`${name} failed: ${message}`);
    return { error: message };
  } finally {
    sectionSeconds[name] = Math.round((Date.now() - t0) / 1000);
  }
}

if (only.has('crypto'))
  doc.crypto = await section('crypto', () => benchCrypto({ jwk, key, policiesDir, budgetMs }));

for (const target of targets) {
  const core = target === main && (only.has('http') || only.has('tokens') || only.has('introspect_http'));
  if (!only.has('bot') && !core) continue;
  const opened = await openTarget(target);
  try {
    const { db } = opened.database;
    await migrateToLatest(db);
    // A plain table (not temporary: a pool's connections do not share temporary tables).
    await sql`create table bench_commit (id serial primary key, v text not null)`.execute(db);
    const keyRing = buildKeyRing(key, []);
    const policies = new PolicyService({ db, keyRing, clock: systemClock, log, policiesDir });
    await policies.reload();

    // First, on the fresh database: the bot through the sandbox (later figures leave jobs behind).
    if (only.has('bot'))
      doc[target === main ? 'bot' : `bot_${target}`] = await section(`bot path on ${target}`, async () => ({
        database: LABEL[target],
        ...(await benchBot({
          db,
          keyRing,
          policies,
          log,
          rounds: args.botRounds,
          chatter: args.chatter,
          levels: args.levels,
        })),
        raw_single_row_commit: await rawCommit(db),
      }));
    if (!core) continue;

    if (only.has('http'))
      doc.http = await section(`http on ${target}`, async () => {
        const { hashed } = await largestPolicy(policiesDir);
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
        try {
          return {
            what: `GET /v1/wpc/:hash through fastify inject (${opened.database.kind}): select, re-hash, verify signature, serialize`,
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
            raw_single_row_commit: await rawCommit(db),
            healthz: await measure(() => app.inject('/healthz'), budgetMs),
          };
        } finally {
          await app.close();
        }
      });

    const engine = engineFor({ db, keyRing, clock: systemClock, log, gatewaySignerDids: [] }, policies);
    const tokens: Record<string, unknown> = {};
    if (only.has('tokens')) {
      const t = await section(`tokens on ${target}`, () => benchEngine(engine, budgetMs, args.samples));
      if ('error' in t) tokens.error = t.error;
      else {
        tokens.cst_mint = t.cst_mint;
        tokens.cst_introspect = t.cst_introspect;
        tokens.approval_to_committed_token = t.approval_to_committed_token;
      }
    }
    if (only.has('introspect_http'))
      tokens.cst_introspect_http = await section(`introspection over HTTP on ${target}`, () =>
        benchIntrospectHttp({ engine, policies, budgetMs }),
      );
    if (Object.keys(tokens).length > 0) doc.tokens = tokens;
  } finally {
    await opened.close();
  }
}

if (only.has('serve'))
  doc.serve = await section('serve', () =>
    benchServe({ databaseUrl, starts: args.starts, idleMs: args.idleMs, openJobCount: args.openJobs }),
  );

const goals = evaluateGoals(doc);
doc.goals = goals;
doc.failed_sections = failed;
doc.section_seconds = sectionSeconds;
doc.elapsed_s = Math.round((Date.now() - started) / 1000);
process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
if (args.check) {
  process.stderr.write(formatGoals(goals));
  process.exitCode = checkExitCode(goals);
}
if (failed.length > 0) {
  progress(`failed: ${failed.join('; ')} (their figures are missing)`);
  process.exitCode = 1;
}
