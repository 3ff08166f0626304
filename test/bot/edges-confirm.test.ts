import { afterEach, describe, expect, it } from 'vitest';
import { botPostWithKey } from '../helpers/bot-faults.js';
import {
  createWorld,
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
    const jobId = jobIdIn(await botPostWithKey(w, root.id, `reply:${root.id}`));
    const confirm = w.post('bruno', `CONFIRM job:${jobId}`, root.id);
    expect(await answer(root.id, confirm.id)).toContain('ERR_NOTHING_TO_CONFIRM');
  });
});
