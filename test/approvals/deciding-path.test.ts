import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { decideStep, DECIDE_ATTEMPTS } from '../../src/approvals/record-decision.js';
import type { Directory } from '../../src/approvals/directory.js';
import { statusPatchKey } from '../../src/chat/outbox.js';
import type { Db } from '../../src/db/database.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { readDecisionNeeds } from '../../src/jobs/job-state.js';
import {
  getVerifiedApprovalPolicy,
  VERIFIED_POLICY_CACHE_MAX,
  verifiedPolicyCacheSize,
} from '../../src/policy/registry.js';
import type { ChatFacts, ChatPost, ChatUser } from '../../src/ports/chat.js';
import { dialectName } from '../helpers/db.js';
import { counted } from '../helpers/statements.js';
import { createTestEngine, editJson, opsJob, U, type TestEngine } from '../helpers/engine.js';

/**
 * Issue 13: the deciding path asks Mattermost before it locks the job, decides in a pinned
 * number of statements, and verifies a pinned policy once per exact stored bytes.
 */

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

const approve = (ctx: EngineContext, jobId: number, userId: string) =>
  decideStep(ctx, { kind: 'approve', jobId, step: 'post-summary', userId });

describe(`the deciding path's statements (${dialectName})`, () => {
  it('a counted approval and the deciding one each take 4 statements (an unlocked read, lock, read, write) plus BEGIN and COMMIT', async () => {
    e = await createTestEngine();
    // The engine alone: what a presenter writes to the outbox is its own.
    const c = counted({ ...e.ctx, events: undefined });
    const job = await opsJob(e.ctx);
    c.reset();
    expect((await approve(c.ctx, job.jobId, U.alice)).code).toBe('APPROVAL_COUNTED');
    expect(c.statements()).toBe(4);
    c.reset();
    const minted = await approve(c.ctx, job.jobId, U.dmitri);
    expect(minted.code).toBe('QUORUM_MET');
    expect(c.statements()).toBe(4);
    // Everything the old path wrote is there: decisions, chained events, the token, the step.
    const events = await e.ctx.db
      .selectFrom('job_events')
      .select(['seq', 'event_type', 'prev_hash_b64u', 'event_hash_b64u'])
      .where('job_id', '=', job.jobId)
      .orderBy('seq')
      .execute();
    expect(events.slice(-3).map((x) => x.event_type)).toEqual([
      'approval_recorded',
      'approval_recorded',
      'token_minted',
    ]);
    for (let i = 1; i < events.length; i++)
      expect(events[i]!.prev_hash_b64u).toBe(events[i - 1]!.event_hash_b64u);
    const step = await e.ctx.db
      .selectFrom('job_steps')
      .select('status')
      .where('job_id', '=', job.jobId)
      .where('step_id', '=', 'post-summary')
      .executeTakeFirstOrThrow();
    expect(step.status).toBe('approved');
  });

  it("with the chat presenter, one statement more: the mint's reply and the status post's re-arming are one", async () => {
    e = await createTestEngine();
    const c = counted(e.ctx);
    const job = await opsJob(e.ctx);
    const status = () =>
      e!.ctx.db
        .selectFrom('outbox')
        .select(['version', 'delivered_at'])
        .where('dedupe_key', '=', statusPatchKey(job.jobId))
        .executeTakeFirstOrThrow();
    const before = await status();
    c.reset();
    expect((await approve(c.ctx, job.jobId, U.alice)).code).toBe('APPROVAL_COUNTED');
    expect(c.statements()).toBe(5);
    const counted1 = await status();
    expect(counted1.version).toBe(before.version + 1);
    c.reset();
    expect((await approve(c.ctx, job.jobId, U.dmitri)).code).toBe('QUORUM_MET');
    expect(c.statements()).toBe(5);
    // Both writes of that one statement are there: the reply, and the status row re-armed.
    const minted = await e.ctx.db
      .selectFrom('outbox')
      .select(['kind', 'message', 'root_id'])
      .where('dedupe_key', '=', `job:${job.jobId}:minted:post-summary`)
      .executeTakeFirstOrThrow();
    expect(minted.kind).toBe('post');
    expect(minted.message).toContain('approved by');
    const after = await status();
    expect(after.version).toBe(counted1.version + 1);
    expect(after.delivered_at).toBeNull();
  });
});

/** Mattermost as a fake: every approval post reads as posted, every account is active. */
function fakeChat(
  posts: Map<string, { userId: string; message: string }>,
  hooks: { onAsk?: (id: string) => Promise<void> },
) {
  const facts: ChatFacts = {
    async post(id): Promise<ChatPost | null> {
      await hooks.onAsk?.(id);
      const p = posts.get(id);
      if (!p) return null;
      return {
        id,
        create_at: 1,
        update_at: 1,
        edit_at: 0,
        delete_at: 0,
        user_id: p.userId,
        channel_id: '',
        root_id: '',
        original_id: '',
        message: p.message,
        type: '',
        props: {},
      };
    },
    async freshUser(id): Promise<ChatUser | null> {
      await hooks.onAsk?.(id);
      return { id, username: `u-${id.slice(0, 4)}`, is_bot: false, delete_at: 0 };
    },
  };
  return facts;
}

/** The context with its database and directory watched: `locked()` is true inside a transaction it started. */
function watched(ctx: EngineContext, asked: (where: string) => void): EngineContext {
  let open = 0;
  const db = new Proxy(ctx.db, {
    get(target, prop) {
      if (prop !== 'transaction') {
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      }
      return () => {
        const builder = target.transaction();
        return {
          execute: async <T>(work: (trx: Db) => Promise<T>) =>
            builder.execute(async (trx) => {
              open += 1;
              try {
                return await work(trx);
              } finally {
                open -= 1;
              }
            }),
        };
      };
    },
  });
  const directory: Directory = {
    groupsOf: async (u, g) => {
      asked(open > 0 ? 'directory in a transaction' : 'directory');
      return ctx.directory.groupsOf(u, g);
    },
    membershipsOf: async (u, g) => {
      asked(open > 0 ? 'directory in a transaction' : 'directory');
      return ctx.directory.membershipsOf(u, g);
    },
  };
  const chat = ctx.chat!;
  return {
    ...ctx,
    db,
    directory,
    chat: {
      post: async (id) => {
        asked(open > 0 ? 'chat in a transaction' : 'chat');
        return chat.post(id);
      },
      freshUser: async (id) => {
        asked(open > 0 ? 'chat in a transaction' : 'chat');
        return chat.freshUser(id);
      },
    },
  };
}

describe(`no network call while the job row is locked (${dialectName})`, () => {
  it('every question to Mattermost or the directory is asked before the deciding transaction begins', async () => {
    const posts = new Map<string, { userId: string; message: string }>();
    e = await createTestEngine({ facts: fakeChat(posts, {}) });
    const where: string[] = [];
    const ctx = watched(e.ctx, (w) => where.push(w));
    const job = await opsJob(e.ctx);
    const row = await e.ctx.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    const thread = (postId: string) => ({ postId, channelId: row.channel_id!, rootId: row.root_post_id! });
    for (const [userId, postId] of [
      [U.alice, 'pa'.padEnd(26, '0')],
      [U.dmitri, 'pd'.padEnd(26, '0')],
    ] as const) {
      posts.set(postId, { userId, message: `APPROVE job:${job.jobId} step:post-summary` });
      await decideStep(ctx, {
        kind: 'approve',
        jobId: job.jobId,
        step: 'post-summary',
        userId,
        post: thread(postId),
      });
    }
    const tokens = await e.ctx.db
      .selectFrom('tokens')
      .select('jti')
      .where('job_id', '=', job.jobId)
      .execute();
    expect(tokens).toHaveLength(4); // 3 auto steps + post-summary
    // Both approval posts and both accounts were re-read for the deciding approval, all before locking.
    expect(where.filter((w) => w === 'chat').length).toBeGreaterThanOrEqual(4);
    expect(where.filter((w) => w.endsWith('in a transaction'))).toEqual([]);
  });

  it('an approval that arrives while Mattermost is asked makes the decision start again, and it then decides on it', async () => {
    const posts = new Map<string, { userId: string; message: string }>();
    const hooks: { onAsk?: (id: string) => Promise<void> } = {};
    e = await createTestEngine({ facts: fakeChat(posts, hooks) });
    const { ctx } = e;
    const job = await opsJob(ctx);
    let injected = false;
    hooks.onAsk = async () => {
      if (injected) return;
      injected = true;
      // alice's approval commits between dmitri's questions and his transaction.
      expect((await approve(ctx, job.jobId, U.alice)).code).toBe('APPROVAL_COUNTED');
    };
    const outcome = await approve(ctx, job.jobId, U.dmitri);
    expect(outcome.code).toBe('QUORUM_MET');
    expect(outcome.minted!.counted.map((c) => c.userId).sort()).toEqual([U.alice, U.dmitri].sort());
  });

  it("uses its caller's read of what to ask once: an approval committed since that read makes it start again and read afresh", async () => {
    const posts = new Map<string, { userId: string; message: string }>();
    e = await createTestEngine({ facts: fakeChat(posts, {}) });
    const { ctx } = e;
    const job = await opsJob(ctx);
    // The caller read the needs (the bot does so with the post's lock); alice's approval commits after.
    const stale = await readDecisionNeeds(ctx.db, { jobId: job.jobId, stepId: 'post-summary' });
    expect(stale!.live).toEqual([]);
    expect((await approve(ctx, job.jobId, U.alice)).code).toBe('APPROVAL_COUNTED');
    const outcome = await ctx.db.transaction().execute((trx) =>
      decideStep(
        ctx,
        {
          kind: 'approve',
          jobId: job.jobId,
          step: 'post-summary',
          userId: U.dmitri,
          needsRead: { state: stale },
        },
        trx,
      ),
    );
    // The first attempt asked nothing about alice and started again; the second read her approval.
    expect(outcome.code).toBe('QUORUM_MET');
    expect(outcome.minted!.counted.map((c) => c.userId).sort()).toEqual([U.alice, U.dmitri].sort());
  });

  it(`is not starved by approvals landing before each attempt: more than ${DECIDE_ATTEMPTS} attempts, each asking about the newcomers`, async () => {
    const extra = Array.from({ length: DECIDE_ATTEMPTS + 2 }, (_, i) => `opsy${String(i).padStart(22, '0')}`);
    const posts = new Map<string, { userId: string; message: string }>();
    const hooks: { onAsk?: (id: string) => Promise<void> } = {};
    e = await createTestEngine({
      facts: fakeChat(posts, hooks),
      edit: (dir) =>
        editJson(dir, 'groups.json', (g) => {
          const groups = g.groups as Record<string, { members: { user_id?: string; note?: string }[] }>;
          groups['ops-oncall']!.members.push(...extra.map((id) => ({ user_id: id, note: 'test' })));
        }),
    });
    const { ctx } = e;
    const job = await opsJob(ctx);
    let next = 0;
    let inside = false;
    hooks.onAsk = async (id) => {
      // dmitri's account is asked once per attempt.
      if (id !== U.dmitri || inside || next >= extra.length) return;
      inside = true;
      // Every time dmitri's questions are asked, another ops-oncall approval commits (no quorum:
      // it needs sec-reviewers too), so each attempt finds an approval its answers do not cover.
      await approve(ctx, job.jobId, extra[next++]!);
      inside = false;
    };
    // Each attempt needed an answer no attempt before it needed (the newest approver's): progress.
    // dmitri (sec-reviewers) completes the quorum the ops-oncall approvals could not.
    expect((await approve(ctx, job.jobId, U.dmitri)).code).toBe('QUORUM_MET');
    expect(next).toBe(extra.length);
    const live = await ctx.db
      .selectFrom('decisions')
      .select('user_id')
      .where('job_id', '=', job.jobId)
      .where('outcome', '=', 'accepted')
      .execute();
    expect(live.map((d) => d.user_id).sort()).toEqual([...extra, U.dmitri].sort());
    expect(
      await ctx.db.selectFrom('tokens').select('jti').where('step_id', '=', 'post-summary').execute(),
    ).toHaveLength(1);
  });
});

describe(`a pinned policy is verified once per stored bytes (${dialectName})`, () => {
  async function tamper(db: Db, hash: string, set: { canonical_payload?: string; signature_b64u?: string }) {
    await db.transaction().execute(async (trx) => {
      await sql`alter table wpc_registry disable trigger wpc_registry_immutable`.execute(trx);
      await trx.updateTable('wpc_registry').set(set).where('policy_hash_b64u', '=', hash).execute();
      await sql`alter table wpc_registry enable trigger wpc_registry_immutable`.execute(trx);
    });
  }

  it('a tampered row is caught after the same version was verified and remembered', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const row = await ctx.db
      .selectFrom('jobs')
      .select('policy_hash_b64u')
      .where('id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    const hash = row.policy_hash_b64u;
    const first = await getVerifiedApprovalPolicy(ctx.db, hash, ctx.keyRing.trusts);
    // Remembered: the same bytes give the same (frozen) verified object.
    expect(await getVerifiedApprovalPolicy(ctx.db, hash, ctx.keyRing.trusts)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);

    const stored = await ctx.db
      .selectFrom('wpc_registry')
      .select(['canonical_payload', 'signature_b64u'])
      .where('policy_hash_b64u', '=', hash)
      .executeTakeFirstOrThrow();
    const forged = stored.canonical_payload.replace('"required_approvals":2', '"required_approvals":1');
    expect(forged).not.toBe(stored.canonical_payload);
    await tamper(ctx.db, hash, { canonical_payload: forged });
    await expect(getVerifiedApprovalPolicy(ctx.db, hash, ctx.keyRing.trusts)).rejects.toMatchObject({
      code: 'ERR_WPC_CORRUPTED',
    });
    // The deciding path reads the same bytes: it decides nothing on them (nothing recorded, nothing minted).
    await expect(approve(ctx, job.jobId, U.alice)).rejects.toMatchObject({ code: 'ERR_POLICY_UNAVAILABLE' });
    expect(
      await ctx.db.selectFrom('decisions').select('id').where('job_id', '=', job.jobId).execute(),
    ).toEqual([]);

    // A signature swapped for another (valid-looking) one is caught too.
    const sig = stored.signature_b64u;
    const other = `${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
    await tamper(ctx.db, hash, { canonical_payload: stored.canonical_payload, signature_b64u: other });
    await expect(getVerifiedApprovalPolicy(ctx.db, hash, ctx.keyRing.trusts)).rejects.toMatchObject({
      code: 'ERR_WPC_CORRUPTED',
    });
    // Restored bytes verify again.
    await tamper(ctx.db, hash, { signature_b64u: sig });
    expect(await getVerifiedApprovalPolicy(ctx.db, hash, ctx.keyRing.trusts)).toMatchObject({
      policy_name: first.policy_name,
    });
    expect(verifiedPolicyCacheSize()).toBeLessThanOrEqual(VERIFIED_POLICY_CACHE_MAX);
  });
});
