import { type Kysely, sql } from 'kysely';

// Frozen in time: uses Kysely<any> and never imports src/.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema types.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('agents')
    .addColumn('id', 'text', (c) => c.primaryKey().check(sql`id ~ '^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$'`))
    // SHA-256 of the bearer key, hex: the key itself is shown once and never stored.
    .addColumn('key_hash', 'text', (c) => c.notNull().unique())
    .addColumn('key_hint', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('revoked_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('jobs')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .check(sql`status in ('open','completed','failed','denied','expired','revoked','cancelled')`),
    )
    .addColumn('origin', 'text', (c) => c.notNull().check(sql`origin in ('mattermost','api')`))
    .addColumn('team_id', 'text')
    .addColumn('channel_id', 'text')
    .addColumn('root_post_id', 'text')
    .addColumn('submitted_by', 'text', (c) => c.references('agents.id'))
    .addColumn('executor', 'text', (c) => c.notNull())
    .addColumn('requester_id', 'text', (c) => c.notNull())
    .addColumn('policy_name', 'text', (c) => c.notNull())
    .addColumn('policy_hash_b64u', 'text', (c) => c.notNull())
    .addColumn('runbook', 'text')
    .addColumn('params', 'text')
    // The plan's JCS text, kept verbatim so its hash can always be recomputed exactly.
    .addColumn('plan', 'text', (c) => c.notNull())
    .addColumn('plan_hash_b64u', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('ended_at', 'timestamptz')
    .addColumn('end_reason', 'text')
    .addColumn('bundle_id', 'text')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addCheckConstraint(
      'jobs_origin_binding',
      sql`(origin = 'mattermost' and team_id is not null and channel_id is not null and root_post_id is not null)
          or (origin = 'api' and submitted_by is not null)`,
    )
    .execute();
  // One job per Mattermost thread root.
  await sql`create unique index jobs_root_post_unique on jobs (channel_id, root_post_id)
    where root_post_id is not null`.execute(db);
  await sql`create index jobs_open_idx on jobs (status, expires_at) where status = 'open'`.execute(db);
  await db.schema.createIndex('jobs_executor_idx').on('jobs').columns(['executor', 'id']).execute();

  await db.schema
    .createTable('job_steps')
    .addColumn('job_id', 'bigint', (c) => c.notNull().references('jobs.id'))
    .addColumn('step_id', 'text', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('tool', 'text', (c) => c.notNull())
    .addColumn('gate', 'text', (c) => c.notNull().check(sql`gate in ('auto','gated')`))
    // The effective approval rule at plan time (JSON), null for auto steps.
    .addColumn('rule', 'text')
    .addColumn('simulation_step', 'text')
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .check(
          sql`status in ('awaiting_approval','approved','claimed','succeeded','failed','denied','revoked','cancelled')`,
        ),
    )
    .addColumn('result_summary', 'text')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('job_steps_pk', ['job_id', 'step_id'])
    .addUniqueConstraint('job_steps_position_unique', ['job_id', 'position'])
    .execute();

  await db.schema
    .createTable('decisions')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    // Null when the command named a job that does not exist (still recorded, with its reason).
    .addColumn('job_id', 'bigint', (c) => c.references('jobs.id'))
    .addColumn('named_job', 'bigint')
    .addColumn('step_id', 'text')
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('approve','deny','revoke','cancel')`))
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('post_id', 'text')
    .addColumn('outcome', 'text', (c) => c.notNull().check(sql`outcome in ('accepted','rejected')`))
    .addColumn('reason_code', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('groups', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('withdrawn_at', 'timestamptz')
    .addColumn('withdrawn_reason', 'text')
    .execute();
  // A person counts once per step: a second live approval is impossible, not just unlikely.
  await sql`create unique index decisions_one_live_approval on decisions (job_id, step_id, user_id)
    where kind = 'approve' and outcome = 'accepted' and withdrawn_at is null`.execute(db);
  // A chat post is decided once.
  await sql`create unique index decisions_post_unique on decisions (post_id) where post_id is not null`.execute(
    db,
  );
  await db.schema.createIndex('decisions_job_idx').on('decisions').columns(['job_id', 'step_id']).execute();

  await db.schema
    .createTable('tokens')
    .addColumn('jti', 'text', (c) => c.primaryKey())
    .addColumn('job_id', 'bigint', (c) => c.notNull().references('jobs.id'))
    .addColumn('step_id', 'text', (c) => c.notNull())
    .addColumn('sub', 'text', (c) => c.notNull())
    .addColumn('kid', 'text', (c) => c.notNull())
    .addColumn('token_hash', 'text', (c) =>
      c
        .notNull()
        .unique()
        .check(sql`token_hash ~ '^[0-9a-f]{64}$'`),
    )
    .addColumn('scope_hash_b64u', 'text', (c) => c.notNull())
    // The compact JWS until the agent claims it; erased at claim, so the database holds
    // a usable token only while nobody has it yet.
    .addColumn('compact', 'text')
    .addColumn('issued_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('claimed_at', 'timestamptz')
    .addColumn('redeemed_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .addColumn('revoke_reason', 'text')
    // Exactly one CST per step.
    .addUniqueConstraint('tokens_one_per_step', ['job_id', 'step_id'])
    .addForeignKeyConstraint('tokens_step_fk', ['job_id', 'step_id'], 'job_steps', ['job_id', 'step_id'])
    .execute();

  await db.schema
    .createTable('job_events')
    .addColumn('job_id', 'bigint', (c) => c.notNull().references('jobs.id'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull().unique())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('timestamp', 'text', (c) => c.notNull())
    // Sorted-key JSON text of the payload; payload_hash_b64u is over exactly these bytes.
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('payload_hash_b64u', 'text', (c) => c.notNull())
    .addColumn('prev_hash_b64u', 'text')
    .addColumn('event_hash_b64u', 'text', (c) => c.notNull().unique())
    .addPrimaryKeyConstraint('job_events_pk', ['job_id', 'seq'])
    .execute();
  await sql`create trigger job_events_append_only before update or delete on job_events
    for each row execute function claw_refuse_change()`.execute(db);
  await sql`create trigger job_events_no_truncate before truncate on job_events
    for each statement execute function claw_refuse_change()`.execute(db);

  await db.schema
    .createTable('gateway_receipts')
    .addColumn('job_id', 'bigint', (c) => c.notNull().references('jobs.id'))
    .addColumn('step_id', 'text', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('envelope', 'text', (c) => c.notNull())
    .addColumn('signer_did', 'text')
    .addColumn('verified', 'boolean', (c) => c.notNull())
    .addColumn('failure', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('gateway_receipts_pk', ['job_id', 'step_id', 'position'])
    .execute();

  await db.schema
    .createTable('bundles')
    .addColumn('bundle_id', 'text', (c) => c.primaryKey())
    .addColumn('job_id', 'bigint', (c) => c.notNull().unique().references('jobs.id'))
    .addColumn('envelope', 'text', (c) => c.notNull())
    .addColumn('payload_hash_b64u', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await sql`create trigger bundles_append_only before update or delete on bundles
    for each row execute function claw_refuse_change()`.execute(db);
  await sql`create trigger bundles_no_truncate before truncate on bundles
    for each statement execute function claw_refuse_change()`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see up().
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'bundles',
    'gateway_receipts',
    'job_events',
    'tokens',
    'decisions',
    'job_steps',
    'jobs',
    'agents',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}
