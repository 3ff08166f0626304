import { jwtVerify, SignJWT } from 'jose';
import { sql } from 'kysely';
import { decideStep } from '../src/approvals/record-decision.js';
import { createJob } from '../src/jobs/create-job.js';
import type { EngineContext } from '../src/jobs/context.js';
import { issueToken } from '../src/tokens/issue-token.js';
import { introspectToken } from '../src/tokens/token-lifecycle.js';
import { measureInterleaved, measurePrepared } from './measure.js';

// mattermost-agent-prod: its post-summary step needs ops-oncall + sec-reviewers.
const TEAM = '9d3bnaiagttz34jro16b6815ia';
const CHANNEL = '7sczj5rye83784zqootng6sb48';
const REQUESTER = 'dse6eipg5ijztcxx8bhb384g5d';
const FIRST = 'fn5tnqd3rq1k6a6rjes4egzp8n';
const DECIDING = 'e8t3kac4ppqwfhe17uzapx175t';

let roots = 0;
async function jobAwaitingOneApproval(ctx: EngineContext): Promise<number> {
  roots += 1;
  const job = await createJob(ctx, {
    origin: {
      kind: 'mattermost',
      teamId: TEAM,
      channelId: CHANNEL,
      rootPostId: `bench${String(roots).padStart(21, '0')}`,
    },
    requesterId: REQUESTER,
    runbook: {
      name: 'service-context',
      params: { service: 'payments-api', query: 'q', notify_channel: 'payments-oncall' },
    },
  });
  await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: FIRST });
  return job.jobId;
}

/** A live CST of a job approved through the engine (two approvals, quorum met, token committed). */
export async function liveToken(ctx: EngineContext): Promise<string> {
  const jobId = await jobAwaitingOneApproval(ctx);
  const minted = await decideStep(ctx, { kind: 'approve', jobId, step: 'post-summary', userId: DECIDING });
  if (minted.code !== 'QUORUM_MET') throw new Error(`bench set-up did not mint: ${minted.code}`);
  const stored = await ctx.db
    .selectFrom('tokens')
    .select('compact')
    .where('jti', '=', minted.minted!.jti)
    .executeTakeFirstOrThrow();
  const live = stored.compact!;
  if (!(await introspectToken(ctx, live)).active) throw new Error('bench token is not active');
  return live;
}

/** The floor's tables (raw SQL, none of ours): made once, before its first call. */
async function createFloorTables(ctx: EngineContext): Promise<void> {
  const { db } = ctx;
  await sql`create table if not exists bench_decision_job (id int primary key, version int not null)`.execute(
    db,
  );
  await sql`insert into bench_decision_job values (1, 0) on conflict do nothing`.execute(db);
  await sql`create table if not exists bench_decision_row
              (id bigserial primary key, job_id int not null, kind text not null, body jsonb not null)`.execute(
    db,
  );
  await sql`create index if not exists bench_decision_row_job on bench_decision_row (job_id, id)`.execute(db);
}

/**
 * The least a deciding approval must do, with nothing of ours between the round trips: lock the
 * job's row, read what the decision rests on (a second statement: one that waited for the lock
 * would read from a snapshot taken before it), sign the token, write the rows in one statement,
 * commit. Raw SQL on tables of its own, so no index, trigger or constraint of ours is paid for.
 */
function rawDecisionFloor(ctx: EngineContext): () => Promise<void> {
  const { db } = ctx;
  const key = ctx.keyRing.active;
  const claims = { sub: 'agent:bench', aud: 'clawproxy', scope: ['step:post-summary'], mission_id: 'job:1' };
  return () =>
    db.transaction().execute(async (trx) => {
      await sql`select version from bench_decision_job where id = 1 for update`.execute(trx);
      await sql`select kind, body from bench_decision_row where job_id = 1 order by id desc limit 8`.execute(
        trx,
      );
      const jws = await new SignJWT({ ...claims, jti: crypto.randomUUID() })
        .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: key.kid })
        .setIssuedAt()
        .setExpirationTime('15m')
        .sign(key.privateKey);
      const row = (kind: string, body: unknown) => sql`(1, ${kind}, ${JSON.stringify(body)}::jsonb)`;
      await sql`
        with moved as (update bench_decision_job set version = version + 1 where id = 1)
        insert into bench_decision_row (job_id, kind, body)
        values ${sql.join([
          row('decision', { step: 'post-summary', user: DECIDING, decision: 'approve' }),
          row('event', { type: 'token_minted', prev: 'A'.repeat(43), hash: 'B'.repeat(43) }),
          row('token', { compact: jws }),
          row('outbox', { message: 'approved: token minted for post-summary' }),
        ])}`.execute(trx);
    });
}

/** CST mint/introspect next to raw jose, and deciding approval → committed token next to a raw commit. */
export async function benchEngine(ctx: EngineContext, budgetMs: number, samples: number) {
  await createFloorTables(ctx);
  const key = ctx.keyRing.active;
  const scope = {
    sub: 'agent:ops-mattermost-1',
    aud: 'clawproxy',
    scope: ['step:post-summary', 'tool:send_message', 'plan:x', 'proxy:call'],
    policy_hash_b64u: 'A'.repeat(43),
    mission_id: 'job:1',
  };
  const sample = await issueToken({ key, scope, issuedAt: new Date(), ttlSeconds: 900 });
  const live = await liveToken(ctx);

  // Each figure is measured in turns with the raw limits it is compared with (see measureInterleaved).
  return {
    cst_mint: {
      what: 'issue a CST (claims, scope hash, EdDSA JWS); measured in turns with its raw limit',
      ...(await measureInterleaved(
        {
          ours: () => issueToken({ key, scope, issuedAt: new Date(), ttlSeconds: 900 }),
          raw_jose_eddsa_sign: () =>
            new SignJWT({ ...sample.claims })
              .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: key.kid })
              .sign(key.privateKey),
        },
        budgetMs * 2,
      )),
    },
    cst_introspect: {
      what:
        'introspect a live CST: strict verify + issuance row + job status (database round trips); ' +
        'measured in turns with its raw limits',
      ...(await measureInterleaved(
        {
          ours: () => introspectToken(ctx, live),
          ours_signature_and_claims_only: () => ctx.verifier.verify(live, { now: new Date() }),
          raw_jose_eddsa_verify: () => jwtVerify(live, key.publicKey, { algorithms: ['EdDSA'] }),
          // The floor of any check that asks the database at every call (as revocation through any
          // replica must be seen at once): the verify, with one primary-key read on its way meanwhile.
          raw_verify_with_one_read_overlapped: () =>
            Promise.all([
              sql`select paused from kill_switch where id = 1`.execute(ctx.db),
              jwtVerify(live, key.publicKey, { algorithms: ['EdDSA'] }),
            ]),
        },
        budgetMs * 4,
      )),
    },
    approval_to_committed_token: {
      what: `deciding APPROVE → quorum re-checked, CST minted and committed (one transaction), ${samples} jobs`,
      ours: await measurePrepared(
        () => jobAwaitingOneApproval(ctx),
        async (id) => {
          const r = await decideStep(ctx, {
            kind: 'approve',
            jobId: id,
            step: 'post-summary',
            userId: DECIDING,
          });
          if (r.code !== 'QUORUM_MET') throw new Error(`unexpected ${r.code}`);
        },
        samples,
      ),
      // The two raw limits in turns, so that their ratio does not depend on which ran first.
      ...(await measureInterleaved(
        {
          raw_decision_floor: rawDecisionFloor(ctx),
          raw_single_row_commit: () =>
            ctx.db
              .transaction()
              .execute((trx) => sql`insert into bench_commit (v) values ('x')`.execute(trx)),
        },
        budgetMs * 2,
      )),
    },
  };
}
