import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { decideStep, withdrawApproval } from '../../src/approvals/record-decision.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { WriteBatch } from '../../src/jobs/job-state.js';
import type { ChatFacts, ChatPost, ChatUser } from '../../src/ports/chat.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, opsJob, U, type TestEngine } from '../helpers/engine.js';

/**
 * A deciding transaction writes its rows in one statement, and in PostgreSQL the parts of one
 * statement do not see each other's changes: a withdrawal of a decision inserted in the same
 * statement must be written as an insert already withdrawn, never as an update of that row.
 */

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

type Post = { userId: string; message: string; edited?: boolean };

function chatOf(posts: Map<string, Post>): ChatFacts {
  return {
    async post(id): Promise<ChatPost | null> {
      const p = posts.get(id);
      if (!p) return null;
      return {
        id,
        create_at: 1,
        update_at: 1,
        edit_at: p.edited ? 2 : 0,
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
      return { id, username: id, is_bot: false, delete_at: 0 };
    },
  };
}

const postId = (x: string) => x.padEnd(26, '0');

async function threadOf(ctx: EngineContext, jobId: number) {
  const row = await ctx.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
  return { channelId: row.channel_id!, rootId: row.root_post_id! };
}

describe(`a withdrawal in the batch that inserts the decision (${dialectName})`, () => {
  it('an approval found edited at quorum time is withdrawn in the database as in the chain', async () => {
    const posts = new Map<string, Post>();
    e = await createTestEngine({ facts: chatOf(posts) });
    const { ctx } = e;
    const job = await opsJob(ctx);
    const thread = await threadOf(ctx, job.jobId);
    const decide = (userId: string, id: string) =>
      decideStep(ctx, {
        kind: 'approve',
        jobId: job.jobId,
        step: 'post-summary',
        userId,
        post: { postId: id, ...thread },
      });
    const phrase = `APPROVE job:${job.jobId} step:post-summary`;
    posts.set(postId('pa'), { userId: U.alice, message: phrase });
    expect((await decide(U.alice, postId('pa'))).code).toBe('APPROVAL_COUNTED');
    // dmitri's post was edited before the bot decided on it: the re-check at quorum withdraws it.
    posts.set(postId('pd'), { userId: U.dmitri, message: `${phrase} (no, wait)`, edited: true });
    const deciding = await decide(U.dmitri, postId('pd'));
    expect(deciding.code).toBe('APPROVAL_COUNTED');
    expect(deciding.minted).toBeUndefined();

    const withdrawnEvents = () =>
      ctx.db
        .selectFrom('job_events')
        .select('payload')
        .where('job_id', '=', job.jobId)
        .where('event_type', '=', 'approval_withdrawn')
        .execute();
    expect(await withdrawnEvents()).toHaveLength(1);
    const d = await ctx.db
      .selectFrom('decisions')
      .selectAll()
      .where('post_id', '=', postId('pd'))
      .executeTakeFirstOrThrow();
    expect(d.withdrawn_at).not.toBeNull();
    expect(d.withdrawn_reason).toBe('post edited');

    // The event for the edit that comes later finds it already withdrawn: no second event.
    const late = await withdrawApproval(ctx, { postId: postId('pd'), why: 'edited' });
    expect(late).toMatchObject({ withdrawn: false, reason: 'already withdrawn' });
    expect(await withdrawnEvents()).toHaveLength(1);

    // His corrected re-post counts, and completes the quorum.
    posts.set(postId('pe'), { userId: U.dmitri, message: phrase });
    const again = await decide(U.dmitri, postId('pe'));
    expect(again.code).toBe('QUORUM_MET');
  });

  it('flush refuses to update a row it inserts in the same statement, and changes nothing', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const at = ctx.clock();
    const seq = await sql<{
      id: string;
    }>`select nextval(pg_get_serial_sequence('decisions', 'id')) as id`.execute(ctx.db);
    const id = Number(seq.rows[0]!.id);
    const batch = new WriteBatch(job.jobId, null);
    batch.withdraw(id, 'post edited', at);
    batch.decisions.push({
      id,
      job_id: job.jobId,
      named_job: job.jobId,
      step_id: 'post-summary',
      kind: 'approve',
      user_id: U.alice,
      post_id: null,
      outcome: 'accepted',
      reason_code: 'APPROVAL_COUNTED',
      reason: null,
      groups: '[]',
      created_at: at,
    });
    await expect(batch.flush(ctx.db)).rejects.toMatchObject({ code: 'ERR_INTERNAL' });
    const row = await ctx.db.selectFrom('decisions').select('id').where('id', '=', id).executeTakeFirst();
    expect(row).toBeUndefined();
  });

  it('flush refuses to update one row twice in the same statement', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const counted = await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.alice,
    });
    const id = counted.decisionId!;
    const batch = new WriteBatch(job.jobId, null);
    batch.withdraw(id, 'post edited', ctx.clock());
    batch.withdraw(id, 'post deleted', ctx.clock());
    await expect(batch.flush(ctx.db)).rejects.toMatchObject({ code: 'ERR_INTERNAL' });
    const row = await ctx.db
      .selectFrom('decisions')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(row.withdrawn_at).toBeNull();
  });
});
