import { executeCommand } from '@claw-approvals/mattermost-sandbox';
import { afterEach, describe, expect, it } from 'vitest';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { eventually } from '../helpers/bot-world.js';
import { approve, countedApprovals, jobRow } from '../helpers/bot-thread.js';
import { dialectName } from '../helpers/db.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { type CommandWorld, commandForm, commandWorld, post } from './command-world.js';

const RUN = 'run service-context service=payments-api query="latency spikes" notify_channel=payments-oncall';

let cw: CommandWorld;
afterEach(async () => {
  await cw.close();
});

async function counts(c: CommandWorld) {
  const n = async (table: 'jobs' | 'command_requests' | 'decisions') =>
    Number(
      (
        await c.w.d.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  return { jobs: await n('jobs'), requests: await n('command_requests'), decisions: await n('decisions') };
}

/** `/claw run …` by bruno (a requester); the job id its answer names and the plan post, once delivered. */
async function runJob(c: CommandWorld) {
  const r = await c.run('bruno', RUN);
  expect(r.status).toBe(200);
  const m = /Requested \*\*job:(\d+)\*\*/.exec(r.text);
  expect(m, r.text).not.toBeNull();
  const jobId = Number(m![1]);
  const plan = await eventually(
    () =>
      c.w.sandbox
        .postsIn(c.w.channel)
        .find((p) => p.user_id === c.w.botUserId && p.props[OUTBOX_KEY_PROP] === `job:${jobId}:plan`),
    `the plan post of job:${jobId}`,
  );
  await eventually(async () => (await jobRow(c.w, jobId)).root_post_id === plan.id, 'the thread bound');
  return { jobId, plan, answer: r.text };
}

describe(`the /claw slash command (${dialectName})`, () => {
  it('runs a job as the user who typed it: plan post at the top of the channel starts its thread, answered only to them', async () => {
    cw = await commandWorld();
    const { jobId, plan, answer } = await runJob(cw);
    expect(answer).toContain('thread starts at its plan post at the top of this channel');
    expect(answer).toContain('1 step needs approval');
    const job = await jobRow(cw.w, jobId);
    expect(job).toMatchObject({
      origin: 'command',
      requester_id: cw.w.ids.bruno,
      channel_id: cw.w.channel,
      team_id: cw.w.team,
      submitted_by: null,
      status: 'open',
    });
    expect(plan.root_id).toBe('');
    expect(plan.message).toContain(approve(jobId));
    // Ephemeral: the answer went to bruno alone; nothing of bruno's was posted in the channel.
    expect(cw.w.sandbox.ephemeralPostsFor(cw.w.ids.bruno).map((p) => p.message)).toEqual([answer]);
    expect(cw.w.sandbox.ephemeralPostsFor(cw.w.ids.alice)).toEqual([]);
    expect(cw.w.sandbox.postsIn(cw.w.channel).filter((p) => p.user_id === cw.w.ids.bruno)).toEqual([]);
    const requests = await cw.w.d.db.selectFrom('command_requests').selectAll().execute();
    expect(requests).toMatchObject([{ user_id: cw.w.ids.bruno, action: 'run', job_id: jobId }]);

    // The thread is the job's: the requester is the authenticated user, so approvals count at once.
    cw.w.post('alice', approve(jobId), plan.id);
    await eventually(async () => (await countedApprovals(cw.w, jobId)).length === 1, 'the approval counted');
  });

  it('shows status only in the job’s channel, with a link to its thread', async () => {
    cw = await commandWorld();
    const { jobId, plan } = await runJob(cw);
    const here = await cw.run('alice', `status job:${jobId}`);
    expect(here.status).toBe(200);
    expect(here.text).toContain(`**job:${jobId}** is open`);
    expect(here.text).toContain(`${cw.w.sandbox.url}/ops/pl/${plan.id}`);
    expect((await cw.run('alice', `status job:${jobId}`, cw.w.otherChannel)).text).toBe(
      `There is no job:${jobId} in this channel.`,
    );
    expect((await cw.run('alice', 'status job:999')).text).toBe('There is no job:999 in this channel.');
    expect((await cw.run('alice', 'status')).text).toBe('Usage: `/claw status job:<n>`');
  });

  it('cancels for the requester, and refuses an outsider, another requester and another channel', async () => {
    cw = await commandWorld();
    const { jobId, plan } = await runJob(cw);
    const outsider = await cw.run('outsider', `cancel job:${jobId} not mine`);
    expect(outsider.text).toMatch(/^Not cancelled: .*\(ERR_NOT_ELIGIBLE\)\.$/);
    expect((await cw.run('farid', `cancel job:${jobId}`)).text).toContain('ERR_NOT_ELIGIBLE');
    expect((await cw.run('bruno', `cancel job:${jobId}`, cw.w.otherChannel)).text).toBe(
      `There is no job:${jobId} in this channel.`,
    );
    expect((await jobRow(cw.w, jobId)).status).toBe('open');
    const refused = await cw.w.d.db
      .selectFrom('decisions')
      .select(['user_id', 'outcome', 'reason_code'])
      .where('job_id', '=', jobId)
      .orderBy('id')
      .execute();
    expect(refused).toEqual([
      { user_id: cw.w.ids.outsider, outcome: 'rejected', reason_code: 'ERR_NOT_ELIGIBLE' },
      { user_id: cw.w.ids.farid, outcome: 'rejected', reason_code: 'ERR_NOT_ELIGIBLE' },
    ]);

    const mine = await cw.run('bruno', `cancel job:${jobId} wrong service`);
    expect(mine.text).toContain(`Cancelled **job:${jobId}**`);
    const job = await jobRow(cw.w, jobId);
    expect(job).toMatchObject({ status: 'cancelled', end_reason: 'wrong service' });
    expect(job.bundle_id).toMatch(/^pb_/);
    // The bundle of a job requested by command verifies like any other.
    const stored = await cw.w.d.db
      .selectFrom('bundles')
      .select('envelope')
      .where('bundle_id', '=', job.bundle_id!)
      .executeTakeFirstOrThrow();
    const verdict = verifyBundle(JSON.parse(stored.envelope), {
      trustsSigner: (did) => did === cw.b.engine.keyRing.active.did,
      gatewaySigners: cw.b.engine.gatewaySigners,
    });
    expect(verdict).toMatchObject({ ok: true });
    await eventually(
      () => cw.w.sandbox.thread(plan.id).some((p) => p.props[OUTBOX_KEY_PROP] === `job:${jobId}:ended`),
      'the ending told in the thread',
    );
    expect((await cw.run('bruno', `cancel job:${jobId}`)).text).toContain('Not cancelled');
  });

  it('answers help', async () => {
    cw = await commandWorld();
    const r = await cw.run('outsider', 'help');
    expect(r.status).toBe(200);
    expect(r.text).toContain('`/claw run <runbook> key=value …`');
    expect(r.text).toContain('Approvals are never taken by slash command');
    expect((await cw.run('outsider', '')).text).toBe(r.text);
  });

  it('refuses approvals and other decisions, naming the phrase and the thread', async () => {
    cw = await commandWorld();
    const { jobId, plan } = await runJob(cw);
    const before = await counts(cw);
    for (const text of [approve(jobId), `approve job:${jobId} step:post-summary`]) {
      const r = await cw.run('alice', text);
      expect(r.text).toContain('not accepted by slash command');
      expect(r.text).toContain(`\`${approve(jobId)}\``);
      expect(r.text).toContain(`${cw.w.sandbox.url}/ops/pl/${plan.id}`);
    }
    expect((await cw.run('dmitri', `DENY job:${jobId} step:post-summary no`)).text).toContain(
      `\`DENY job:${jobId} step:post-summary <reason>\``,
    );
    expect((await cw.run('chioma', `REVOKE job:${jobId} bad`)).text).toContain(
      'not accepted by slash command',
    );
    expect((await counts(cw)).decisions).toBe(before.decisions);
    expect(await countedApprovals(cw.w, jobId)).toEqual([]);
    expect((await jobRow(cw.w, jobId)).status).toBe('open');
  });

  it('answers bad input clearly and creates nothing', async () => {
    cw = await commandWorld();
    expect((await cw.run('bruno', `run ${'x'.repeat(2000)}`)).text).toMatch(
      /^Not read: the command is 2004 characters long/,
    );
    expect((await cw.run('bruno', `${RUN}\u0007`)).text).toMatch(
      /^Not read: the command holds control characters/,
    );
    expect((await cw.run('bruno', `${RUN}\u202e`)).text).toMatch(
      /^Not read: the command holds control characters/,
    );
    expect((await cw.run('bruno', 'frobnicate now')).text).toBe(
      'Not understood: `frobnicate now`. Try `/claw help`.',
    );
    expect((await cw.run('bruno', 'run service-context service=payments-api')).text).toMatch(
      /^No job: .*\(ERR_PLAN_INVALID\)/,
    );
    expect((await cw.run('bruno', 'run')).text).toContain('name a runbook');
    expect((await cw.run('outsider', RUN)).text).toContain('outsider is not in a requester group');
    expect((await cw.run('bruno', RUN, cw.w.otherChannel)).text).toContain('ERR_CHANNEL_CLOSED');
    const dm = cw.w.sandbox.createDirectChannel(cw.w.ids.bruno, cw.w.botUserId);
    const direct = await executeIn(cw, 'bruno', dm.id, RUN);
    expect(direct).toContain('not in direct messages');
    expect((await counts(cw)).jobs).toBe(0);
  });

  it('answers at most answersPerMinute commands a person, then does nothing', async () => {
    cw = await commandWorld({ answersPerMinute: 2 });
    await cw.run('bruno', 'help');
    await cw.run('bruno', 'help');
    expect((await cw.run('bruno', RUN)).text).toMatch(/^Not read: at most 2 commands a minute/);
    expect((await cw.run('alice', 'help')).text).toContain('/claw run');
    expect(await counts(cw)).toMatchObject({ jobs: 0, requests: 3 });
  });

  it('refuses a wrong, missing or mismatched token with 401, and changes nothing', async () => {
    cw = await commandWorld();
    // Another command pointing here has its own token: Mattermost reports the 401 as a failure.
    cw.w.sandbox.createCommand({
      creator_id: cw.w.ids.alice,
      team_id: cw.w.team,
      trigger: 'other',
      url: cw.url,
    });
    const other = await executeIn(cw, 'bruno', cw.w.channel, RUN, '/other');
    expect(other).toBe('');
    const form = commandForm(cw, 'bruno', RUN);
    const unauthenticated = { error: { code: 'ERR_UNAUTHENTICATED', message: expect.any(String) as string } };
    for (const headers of [
      { Authorization: `Token ${'x'.repeat(26)}` },
      { Authorization: `Bearer ${cw.command.token}` },
      { Authorization: `token ${cw.command.token}` },
      { Authorization: cw.command.token },
      {} as Record<string, string>,
    ]) {
      const r = await post(cw, form, headers);
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.body).toMatchObject(unauthenticated);
    }
    // The right header, but the form carries another token.
    const forged = await post(cw, commandForm(cw, 'bruno', RUN, { token: 'y'.repeat(26) }));
    expect(forged.status).toBe(401);
    expect(await counts(cw)).toEqual({ jobs: 0, requests: 0, decisions: 0 });
    // The same request with the command's token is handled.
    expect((await post(cw, form)).status).toBe(200);
    expect((await counts(cw)).jobs).toBe(1);
  });

  it('refuses everything when no token is configured, saying so', async () => {
    cw = await commandWorld({ token: null });
    const r = await post(cw, commandForm(cw, 'bruno', RUN));
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({
      error: { code: 'ERR_UNAUTHENTICATED', message: expect.stringContaining('not configured') as string },
    });
    expect(await executeIn(cw, 'bruno', cw.w.channel, 'help')).toBe('');
    expect(await counts(cw)).toEqual({ jobs: 0, requests: 0, decisions: 0 });
  });

  it('handles a replayed request (same trigger id) once, also when both arrive at once', async () => {
    cw = await commandWorld();
    const form = commandForm(cw, 'bruno', RUN);
    const answers = await Promise.all([post(cw, form), post(cw, form)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    const texts = answers.map((a) => (a.body as { text: string }).text).sort();
    expect(texts[0]).toMatch(/^Requested \*\*job:\d+\*\*/);
    expect(texts[1]).toMatch(/^This request was already handled \(job:\d+\); nothing changed this time\.$/);
    const again = await post(cw, form);
    expect((again.body as { text: string }).text).toMatch(/already handled/);
    expect(await counts(cw)).toMatchObject({ jobs: 1, requests: 1 });
    // A repeated field the command reads is refused rather than picked from.
    const doubled = commandForm(cw, 'bruno', 'help');
    doubled.append('user_id', cw.w.ids.alice);
    expect((await post(cw, doubled)).status).toBe(400);
  });
});

/** A command typed in any channel (a DM needs the team named), through Mattermost: its answer text or ''. */
async function executeIn(c: CommandWorld, who: 'bruno', channelId: string, text: string, trigger = '/claw') {
  const r = await executeCommand(c.w.sandbox, c.w.tokens[who], {
    channel_id: channelId,
    team_id: c.w.team,
    command: `${trigger} ${text}`,
  });
  return r.status === 200 ? String((r.body as { text?: unknown }).text ?? '') : '';
}
