import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { answerToRoot, botPostWithKey } from '../helpers/bot-faults.js';
import {
  createWorld,
  eventually,
  jobIdIn,
  ready,
  RUN,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { actionOf, type AgentApi, agentApi } from '../helpers/agent-api.js';
import { dialectName } from '../helpers/db.js';

let w: World;
let api: AgentApi | null = null;
const bots: RunningBot[] = [];

afterEach(async () => {
  await api?.close();
  api = null;
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

const STEP = 'post-summary';

async function setup(): Promise<{ b: RunningBot; api: AgentApi }> {
  w = await createWorld();
  const b = await startBot(w);
  bots.push(b);
  await ready(b);
  api = await agentApi(w, b);
  return { b, api };
}

async function answer(rootId: string, postId: string) {
  return (await botPostWithKey(w, rootId, `reply:${postId}`)).message;
}

describe(`a requester named by an agent confirms before approvals count (${dialectName})`, () => {
  it('refuses approvals until the named requester types CONFIRM exactly, in the thread', async () => {
    const { api } = await setup();
    const jobId = await api.submit(w.ids.grace);
    const plan = await api.planPost(jobId);
    expect(plan.message).toContain('as asserted by agent `agent:ops-mattermost-1`');
    expect(plan.message).toContain(`@grace: if you asked for this work, reply \`CONFIRM job:${jobId}\``);
    const phrase = `APPROVE job:${jobId} step:${STEP}`;

    const early = w.post('alice', phrase, plan.id);
    expect(await answer(plan.id, early.id)).toContain('ERR_REQUESTER_UNCONFIRMED');
    const someoneElse = w.post('bruno', `CONFIRM job:${jobId}`, plan.id);
    expect(await answer(plan.id, someoneElse.id)).toContain('ERR_NOT_THE_REQUESTER');
    const sloppy = w.post('grace', `confirm job:${jobId}`, plan.id);
    expect(await answer(plan.id, sloppy.id)).toContain(`\`CONFIRM job:${jobId}\``);
    expect(await actionOf(w, sloppy.id)).toBe('near_miss');
    const elsewhere = w.post('grace', `CONFIRM job:${jobId}`);
    expect(await answer(elsewhere.id, elsewhere.id)).toContain('ERR_WRONG_THREAD');

    const confirm = w.post('grace', `CONFIRM job:${jobId}`, plan.id);
    expect(await answer(plan.id, confirm.id)).toContain(`job:${jobId} confirmed by its requester @grace`);
    expect(await actionOf(w, confirm.id)).toBe('confirm:REQUESTER_CONFIRMED');
    const again = w.post('grace', `CONFIRM job:${jobId}`, plan.id);
    expect(await answer(plan.id, again.id)).toContain('ERR_ALREADY_CONFIRMED');

    // Approvals made before the confirmation never counted: both approvers approve now.
    w.post('alice', phrase, plan.id);
    const dmitri = w.post('dmitri', phrase, plan.id);
    await botPostWithKey(w, plan.id, `job:${jobId}:minted:${STEP}`);
    expect(await actionOf(w, dmitri.id)).toBe('approve:QUORUM_MET');
    const decisions = await w.d.db
      .selectFrom('decisions')
      .select(['post_id', 'reason_code'])
      .where('job_id', '=', jobId)
      .where('post_id', '=', early.id)
      .execute();
    expect(decisions).toEqual([{ post_id: early.id, reason_code: 'ERR_REQUESTER_UNCONFIRMED' }]);
    const events = await w.d.db
      .selectFrom('job_events')
      .select('event_type')
      .where('job_id', '=', jobId)
      .orderBy('seq')
      .execute();
    expect(events.map((e) => e.event_type)).toContain('requester_confirmed');
  });

  it('has nothing to confirm on a job the requester asked for in chat', async () => {
    await setup();
    const root = w.post('bruno', RUN);
    const jobId = jobIdIn(await answerToRoot(w, root.id));
    const confirm = w.post('bruno', `CONFIRM job:${jobId}`, root.id);
    expect(await answer(root.id, confirm.id)).toContain('ERR_NOTHING_TO_CONFIRM');
  });
});

describe(`a requester confirmation that stops standing (${dialectName})`, () => {
  const confirmDecisionId = async (postId: string) =>
    (
      await w.d.db
        .selectFrom('decisions')
        .select('id')
        .where('post_id', '=', postId)
        .executeTakeFirstOrThrow()
    ).id;

  it('a CONFIRM deleted before the step is minted no longer lets approvals count', async () => {
    const { api } = await setup();
    const jobId = await api.submit(w.ids.grace);
    const plan = await api.planPost(jobId);
    const confirm = w.post('grace', `CONFIRM job:${jobId}`, plan.id);
    await answer(plan.id, confirm.id);
    const phrase = `APPROVE job:${jobId} step:${STEP}`;
    const alice = w.post('alice', phrase, plan.id);
    await answer(plan.id, alice.id);
    // The requester takes the confirmation back, as an approver takes back an approval.
    w.sandbox.deletePost(w.ids.grace, confirm.id);
    await eventually(async () => {
      const row = await w.d.db
        .selectFrom('chat_posts')
        .select('delete_at')
        .where('post_id', '=', confirm.id)
        .executeTakeFirst();
      return Number(row?.delete_at ?? 0) > 0;
    }, 'the deletion of the CONFIRM seen');
    const dmitri = w.post('dmitri', phrase, plan.id);
    await eventually(async () => (await actionOf(w, dmitri.id)) !== undefined, 'second approval decided');
    const tokens = await w.d.db
      .selectFrom('tokens')
      .select('jti')
      .where('job_id', '=', jobId)
      .where('step_id', '=', STEP)
      .execute();
    expect(tokens, 'no CST for the gated step without a standing confirmation').toEqual([]);
    const told = await botPostWithKey(w, plan.id, `unconfirmed:${await confirmDecisionId(confirm.id)}`);
    expect(told.message).toContain('is withdrawn: the post was deleted');
    expect(await actionOf(w, dmitri.id)).toBe('approve:ERR_REQUESTER_UNCONFIRMED');
  });

  it('a CONFIRM by a requester whose account was deactivated before it was handled does not count', async () => {
    const { api } = await setup();
    const jobId = await api.submit(w.ids.grace);
    const plan = await api.planPost(jobId);
    await bots.splice(0)[0]!.stop();
    // Posted while the bot was down; the account is deactivated before the bot catches up.
    const confirm = w.post('grace', `CONFIRM job:${jobId}`, plan.id);
    w.sandbox.setUserActive(w.ids.grace, false);
    const b2 = await startBot(w);
    bots.push(b2);
    await ready(b2);
    await eventually(async () => (await actionOf(w, confirm.id)) !== undefined, 'the CONFIRM handled');
    expect(await actionOf(w, confirm.id)).not.toBe('confirm:REQUESTER_CONFIRMED');
    const job = await w.d.db
      .selectFrom('jobs')
      .select('requester_confirmed_at')
      .where('id', '=', jobId)
      .executeTakeFirstOrThrow();
    expect(job.requester_confirmed_at).toBeNull();
  });

  it('a CONFIRM buried under another line is answered with the CONFIRM phrase, not REVOKE', async () => {
    const { api } = await setup();
    const jobId = await api.submit(w.ids.grace);
    const plan = await api.planPost(jobId);
    const buried = w.post('grace', `yes that was me\nCONFIRM job:${jobId}`, plan.id);
    const reply = await answer(plan.id, buried.id);
    expect(await actionOf(w, buried.id)).toBe('near_miss');
    expect(reply).toContain(`\`CONFIRM job:${jobId}\``);
    expect(reply).not.toContain('REVOKE');
  });

  it('a CONFIRM by a requester who has left every requester group does not count', async () => {
    const { b, api } = await setup();
    const jobId = await api.submit(w.ids.grace);
    const plan = await api.planPost(jobId);
    const file = path.join(w.policiesDir, 'groups.json');
    const groups = JSON.parse(await fs.readFile(file, 'utf8')) as {
      groups: Record<string, { members: { user_id?: string }[] }>;
    };
    for (const g of Object.values(groups.groups))
      g.members = g.members.filter((m) => m.user_id !== w.ids.grace);
    await fs.writeFile(file, JSON.stringify(groups, null, 2));
    await b.engine.policies.reload();
    const confirm = w.post('grace', `CONFIRM job:${jobId}`, plan.id);
    expect(await answer(plan.id, confirm.id)).toContain('ERR_NOT_A_REQUESTER');
    expect(await actionOf(w, confirm.id)).toBe('confirm:ERR_NOT_A_REQUESTER');
  });

  it("a run in an agent job's plan thread is refused even before the thread is bound", async () => {
    const { api } = await setup();
    const jobId = await api.submit(w.ids.grace);
    const plan = await api.planPost(jobId);
    // As in the moment between Mattermost taking the plan post and the binding being recorded.
    await w.d.db.updateTable('jobs').set({ root_post_id: null }).where('id', '=', jobId).execute();
    const run = w.post('bruno', RUN, plan.id);
    expect(await answer(plan.id, run.id)).toContain(`this thread already belongs to job:${jobId}`);
    expect(await actionOf(w, run.id)).toBe('run_thread_taken');
    expect(await w.d.db.selectFrom('jobs').select('id').execute()).toHaveLength(1);
  });
});
