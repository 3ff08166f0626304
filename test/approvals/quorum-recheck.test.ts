import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { botPostWithKey, killBot } from '../helpers/bot-faults.js';
import {
  approve,
  botSays,
  decisionsOn,
  expectRejected,
  GATED,
  handledOf,
  requestJob,
  tokensOf,
} from '../helpers/bot-thread.js';
import {
  createWorld,
  eventually,
  ready,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';

let w: World;
const bots: RunningBot[] = [];
beforeEach(async () => {
  w = await createWorld();
});
afterEach(async () => {
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

async function bot(): Promise<RunningBot> {
  const b = await startBot(w);
  bots.push(b);
  await ready(b);
  return b;
}

async function eventsOf(jobId: number) {
  const rows = await w.d.db
    .selectFrom('job_events')
    .select(['event_type', 'payload'])
    .where('job_id', '=', jobId)
    .orderBy('seq')
    .execute();
  return rows.map((r) => ({ type: r.event_type, payload: JSON.parse(r.payload) as Record<string, unknown> }));
}

/** Who the step's token was minted on, from its `token_minted` event. */
async function mintedOn(jobId: number): Promise<string[]> {
  const minted = (await eventsOf(jobId)).find((e) => e.type === 'token_minted' && e.payload.step === GATED);
  return ((minted?.payload.counted ?? []) as { user_id: string }[]).map((c) => c.user_id).sort();
}

describe(`quorum is evaluated on Mattermost as it is now (${dialectName})`, () => {
  it('an approval deleted while the bot was down, after the deciding approval was posted, does not count when it returns', async () => {
    const first = await bot();
    const { root, jobId } = await requestJob(w, 'grace');
    const alice = w.post('alice', approve(jobId), root.id);
    await botPostWithKey(w, root.id, `reply:${alice.id}`);
    await killBot(first);

    const dmitri = w.post('dmitri', approve(jobId), root.id);
    // Deleted after dmitri posted (a later millisecond): catch-up hands dmitri's post over first.
    await eventually(() => Date.now() > dmitri.create_at + 1, 'the next millisecond');
    w.sandbox.deletePost(w.ids.alice, alice.id);
    const second = await bot();
    expect(await handledOf(second, dmitri.id)).toMatchObject({
      outcome: 'handled',
      action: 'APPROVAL_COUNTED',
    });
    await second.bot.settle();

    expect(await tokensOf(w, jobId)).toEqual([]);
    const [aliceRow] = await decisionsOn(w, alice.id);
    expect(aliceRow).toMatchObject({ outcome: 'accepted', withdrawn_reason: 'post deleted' });
    expect(aliceRow!.withdrawn_at).not.toBeNull();
    const withdrawn = (await eventsOf(jobId)).filter((e) => e.type === 'approval_withdrawn');
    expect(withdrawn).toMatchObject([
      { payload: { post_id: alice.id, why: 'deleted', detected_by: 'recheck' } },
    ]);
    await botSays(
      w,
      root.id,
      `Approval by @alice for job:${jobId} step \`${GATED}\` withdrawn: the post was deleted`,
    );

    // dmitri's approval still counts: one more from ops-oncall mints, on bruno and dmitri.
    w.post('bruno', approve(jobId), root.id);
    await botPostWithKey(w, root.id, `job:${jobId}:minted:${GATED}`);
    expect(await tokensOf(w, jobId)).toHaveLength(1);
    expect(await mintedOn(jobId)).toEqual([w.ids.bruno, w.ids.dmitri].sort());
  });

  it('an approval edited into something else while the bot was down is withdrawn at quorum time', async () => {
    const first = await bot();
    const { root, jobId } = await requestJob(w, 'grace');
    const alice = w.post('alice', approve(jobId), root.id);
    await botPostWithKey(w, root.id, `reply:${alice.id}`);
    await killBot(first);

    const dmitri = w.post('dmitri', approve(jobId), root.id);
    await eventually(() => Date.now() > dmitri.create_at + 1, 'the next millisecond');
    w.sandbox.editPost(w.ids.alice, alice.id, `${approve(jobId)} (on second thought, no)`);
    const second = await bot();
    expect(await handledOf(second, dmitri.id)).toMatchObject({ action: 'APPROVAL_COUNTED' });
    expect(await tokensOf(w, jobId)).toEqual([]);
    expect(await decisionsOn(w, alice.id)).toMatchObject([{ withdrawn_reason: 'post edited' }]);
  });

  it('while Mattermost cannot say what the approval posts are, nothing is minted; the decision is retried and mints once it can', async () => {
    await bot();
    const { root, jobId } = await requestJob(w, 'grace');
    const alice = w.post('alice', approve(jobId), root.id);
    await botPostWithKey(w, root.id, `reply:${alice.id}`);

    w.sandbox.injectFault({ status: 503, forMs: 600_000, method: 'GET', pathPrefix: '/api/v4/posts/' });
    const dmitri = w.post('dmitri', approve(jobId), root.id);
    await eventually(
      () => w.sandbox.requestCount({ method: 'GET', pathPrefix: '/api/v4/posts/', status: 503 }) >= 6,
      'the bot trying to re-read the approvals',
    );
    expect(await tokensOf(w, jobId)).toEqual([]);
    // Rolled back, not refused: the deciding post is not decided yet.
    expect(await decisionsOn(w, dmitri.id)).toEqual([]);

    w.sandbox.clearFaults();
    await botPostWithKey(w, root.id, `job:${jobId}:minted:${GATED}`);
    expect(await tokensOf(w, jobId)).toHaveLength(1);
    expect(await mintedOn(jobId)).toEqual([w.ids.alice, w.ids.dmitri].sort());
  });
});

describe(`deactivated people do not count (${dialectName})`, () => {
  it('an approver deactivated after approving does not make up the quorum', async () => {
    await bot();
    const { root, jobId } = await requestJob(w, 'grace');
    const alice = w.post('alice', approve(jobId), root.id);
    await botPostWithKey(w, root.id, `reply:${alice.id}`);
    w.sandbox.setUserActive(w.ids.alice, false);
    expect(w.sandbox.getUser(w.ids.alice)?.delete_at).toBeGreaterThan(0);

    const dmitri = w.post('dmitri', approve(jobId), root.id);
    expect(await handledOf(bots[0]!, dmitri.id)).toMatchObject({ action: 'APPROVAL_COUNTED' });
    expect(await tokensOf(w, jobId)).toEqual([]);

    w.post('bruno', approve(jobId), root.id);
    await botPostWithKey(w, root.id, `job:${jobId}:minted:${GATED}`);
    expect(await mintedOn(jobId)).toEqual([w.ids.bruno, w.ids.dmitri].sort());
  });

  it('an approval handled after its author was deactivated is refused with ERR_APPROVER_DEACTIVATED', async () => {
    const first = await bot();
    const { root, jobId } = await requestJob(w, 'grace');
    await killBot(first);
    const alice = w.post('alice', approve(jobId), root.id);
    w.sandbox.setUserActive(w.ids.alice, false);
    const second = await bot();
    await handledOf(second, alice.id);
    await expectRejected(w, alice.id, 'ERR_APPROVER_DEACTIVATED', jobId);
  });

  it('while Mattermost cannot say whether approvers are active, nothing is decided or minted', async () => {
    await bot();
    const { root, jobId } = await requestJob(w, 'grace');
    const alice = w.post('alice', approve(jobId), root.id);
    await botPostWithKey(w, root.id, `reply:${alice.id}`);

    // Only alice's account cannot be read: she approved before, so only a fresh check asks for it.
    const aliceUser = `/api/v4/users/${w.ids.alice}`;
    w.sandbox.injectFault({ status: 503, forMs: 600_000, method: 'GET', pathPrefix: aliceUser });
    const dmitri = w.post('dmitri', approve(jobId), root.id);
    await eventually(
      () => w.sandbox.requestCount({ method: 'GET', pathPrefix: aliceUser, status: 503 }) >= 6,
      "the bot trying to read alice's account",
    );
    expect(await tokensOf(w, jobId)).toEqual([]);
    expect(await decisionsOn(w, dmitri.id)).toEqual([]);

    w.sandbox.clearFaults();
    await botPostWithKey(w, root.id, `job:${jobId}:minted:${GATED}`);
    expect(await tokensOf(w, jobId)).toHaveLength(1);
  });
});
