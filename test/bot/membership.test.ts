import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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

// groups.json: ops-oncall delegates to the Mattermost user group uibxf4…, and security to
// the members of the private channel 5xcnr99….
const OPS_ONCALL_GROUP = 'uibxf4oba4dbo6fisi3knuwnjy';
const SECURITY_CHANNEL = '5xcnr99t1annwkxri4w1b9a75b';

let w: World;
let b: RunningBot;
let hank: string;
let ivy: string;

beforeEach(async () => {
  w = await createWorld();
  hank = w.sandbox.createUser({ username: 'hank' }).user.id;
  ivy = w.sandbox.createUser({ username: 'ivy' }).user.id;
  for (const id of [hank, ivy]) w.sandbox.addChannelMember(w.channel, id);
  const group = w.sandbox.createGroup({ id: OPS_ONCALL_GROUP, name: 'ops-oncall' });
  w.sandbox.addGroupMembers(group.id, [hank]);
  const sec = w.sandbox.createChannel({
    id: SECURITY_CHANNEL,
    team_id: w.team,
    name: 'security-response',
    type: 'P',
  });
  w.sandbox.addChannelMember(sec.id, w.botUserId);
  w.sandbox.addChannelMember(sec.id, ivy);
  b = await startBot(w);
  await ready(b);
});
afterEach(async () => {
  await b.stop();
  await w.close();
});

async function job() {
  const root = w.post('grace', RUN);
  const plan = await eventually(
    () => w.botReplies(root.id).find((p) => p.message.includes('Plan for job:')),
    'plan',
  );
  return { root: root.id, jobId: jobIdIn(plan) };
}

const says = (root: string, text: string) =>
  eventually(() => w.botReplies(root).find((p) => p.message.includes(text)), `a reply with "${text}"`);

describe('approver groups that delegate to Mattermost', () => {
  it('a member of the Mattermost user group approves as ops-oncall; quorum with a listed sec-reviewer mints', async () => {
    const { root, jobId } = await job();
    w.sandbox.createPost(hank, {
      channel_id: w.channel,
      root_id: root,
      message: `APPROVE job:${jobId} step:post-summary`,
    });
    await says(root, 'Approval by @hank counted');
    w.post('dmitri', `APPROVE job:${jobId} step:post-summary`, root);
    const minted = await says(root, 'approved by');
    expect(minted.message).toContain('@hank (ops-oncall)');
    expect(minted.message).toContain('@dmitri (sec-reviewers)');
  });

  it('a member of the security channel may REVOKE; someone outside it may not', async () => {
    const { root, jobId } = await job();
    w.post('farid', `REVOKE job:${jobId} looks wrong`, root);
    await says(root, '@farid not counted');
    w.sandbox.createPost(ivy, {
      channel_id: w.channel,
      root_id: root,
      message: `REVOKE job:${jobId} credential leak suspected`,
    });
    await says(root, `job:${jobId} revoked by @ivy`);
    const ended = await says(root, `job:${jobId} revoked**`);
    expect(ended.props.claw_bundle_id).toMatch(/^pb_/);
    const row = await w.d.db
      .selectFrom('jobs')
      .select('status')
      .where('id', '=', jobId)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('revoked');
  });

  it('fails closed while Mattermost cannot answer the membership question, then decides once', async () => {
    const { root, jobId } = await job();
    w.sandbox.injectFault({ status: 503, forMs: 1_500, method: 'GET', pathPrefix: '/api/v4/users' });
    const post = w.sandbox.createPost(hank, {
      channel_id: w.channel,
      root_id: root,
      message: `APPROVE job:${jobId} step:post-summary`,
    });
    // While the fault lasts, nothing is decided about this post.
    await eventually(
      () => w.sandbox.requestCount({ pathPrefix: '/api/v4/users', status: 503 }) > 0,
      'a refused membership call',
    );
    const early = await w.d.db.selectFrom('decisions').selectAll().where('post_id', '=', post.id).execute();
    expect(early).toHaveLength(0);
    await says(root, 'Approval by @hank counted');
    const decided = await w.d.db.selectFrom('decisions').selectAll().where('post_id', '=', post.id).execute();
    expect(decided).toHaveLength(1);
    expect(decided[0]).toMatchObject({ outcome: 'accepted', reason_code: 'APPROVAL_COUNTED' });
  });
});
