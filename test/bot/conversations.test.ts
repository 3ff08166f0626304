import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_COMMAND_LENGTH } from '../../src/approvals/parse-command.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import {
  createWorld,
  eventually,
  type Person,
  ready,
  RUN,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import {
  answerTo,
  approve,
  AUTO_STEPS,
  botPosts,
  botSays,
  chatPostRow,
  countedApprovals,
  createSecurityChannel,
  decisionsOn,
  expectRejected,
  GATED,
  handledOf,
  jobRow,
  reacted,
  requestJob,
  tokensOf,
} from '../helpers/bot-thread.js';

let w: World;
let b: RunningBot | null = null;

beforeEach(async () => {
  w = await createWorld();
  createSecurityChannel(w);
});
afterEach(async () => {
  await b?.stop();
  b = null;
  await w.close();
});

/** A bot that answers everything: the flood limit has its own tests. */
async function boot(complaintsPerMinute = 1000): Promise<RunningBot> {
  b = await startBot(w, { complaintsPerMinute });
  await ready(b);
  return b;
}

const say = (who: Person, message: string, rootId?: string, channelId?: string) =>
  w.post(who, message, rootId, channelId);

async function jobCount(): Promise<number> {
  const rows = await w.d.db.selectFrom('jobs').select('id').execute();
  return rows.length;
}

async function allTokens(jobId: number) {
  return w.d.db.selectFrom('tokens').selectAll().where('job_id', '=', jobId).execute();
}

/** In the thread, the bot's post with outbox key `first` comes before the one with `then`. */
function expectBefore(rootId: string, first: string, then: string): void {
  const keys = w.botReplies(rootId).map((p) => String(p.props.claw_outbox_key));
  expect(keys).toContain(first);
  expect(keys).toContain(then);
  expect(keys.indexOf(first), keys.join(', ')).toBeLessThan(keys.indexOf(then));
}

/** The ended announcement: status, proof bundle id and link, in the text and in the props. */
async function expectEnded(rootId: string, jobId: number, status: string): Promise<ChatPost> {
  const ended = await botSays(w, rootId, `**job:${jobId} ${status}**`);
  const bundleId = String(ended.props.claw_bundle_id);
  expect(bundleId).toMatch(/^pb_[A-Za-z0-9_-]{22,}$/);
  expect(ended.props.claw_job_status).toBe(status);
  expect(ended.props.claw_bundle_url).toBe(`https://claw.example.test/v1/bundles/${bundleId}`);
  expect(ended.message).toContain(`https://claw.example.test/v1/bundles/${bundleId}`);
  const job = await jobRow(w, jobId);
  expect(job).toMatchObject({ status, bundle_id: bundleId });
  const bundle = await w.d.db
    .selectFrom('bundles')
    .select('job_id')
    .where('bundle_id', '=', bundleId)
    .executeTakeFirst();
  expect(bundle?.job_id).toBe(jobId);
  // Every token the job still had is revoked with it.
  for (const t of await allTokens(jobId)) expect(t.revoked_at ?? t.redeemed_at).not.toBeNull();
  return ended;
}

describe('run → the plan post', () => {
  it('states the job id, policy name and short hash, plan hash, a table of steps with their gate, and the exact phrase for the gated step', async () => {
    await boot();
    const { root, plan, jobId } = await requestJob(w, 'bruno');
    const job = await jobRow(w, jobId);
    expect(plan.root_id).toBe(root.id);
    expect(job).toMatchObject({ channel_id: w.channel, root_post_id: root.id, requester_id: w.ids.bruno });
    const m = plan.message;
    expect(m).toContain(`**Plan for job:${jobId}** — runbook \`service-context\``);
    expect(m).toContain('requested by @bruno');
    expect(m).toContain(
      `Policy \`mattermost-agent-prod\` (\`${job.policy_hash_b64u.slice(0, 8)}\`) · plan hash \`${job.plan_hash_b64u}\``,
    );
    expect(m).toContain('**Status: ⏳ waiting for approval**');
    expect(m).toContain('| # | step | tool | what | gate | status | to approve, reply exactly |');
    // The read-only steps got their tokens with the job: named by jti, never shown.
    const tokens = await allTokens(jobId);
    expect(tokens.map((t) => t.step_id).sort()).toEqual([...AUTO_STEPS].sort());
    const jti = (step: string) => tokens.find((t) => t.step_id === step)!.jti;
    for (const [n, step, tool] of [
      [1, 'search-kb', 'search'],
      [2, 'read-runbook', 'read'],
      [3, 'fetch-status', 'http_get'],
    ] as const) {
      expect(m).toContain(`| ${n} | \`${step}\` | \`${tool}\` |`);
      expect(m).toContain(`| auto | ✅ runs without approval · CST \`${jti(step)}\` | — |`);
    }
    expect(m).toContain(
      `| 4 | \`post-summary\` | \`send_message\` | Post the gathered context to payments-oncall (two-person approval) | 2 approvals from ops-oncall, sec-reviewers (distinct groups) | ⏳ 0/2 | \`APPROVE job:${jobId} step:post-summary\` |`,
    );
    for (const t of tokens) expect(m).not.toContain(t.compact ?? '\u0000');
    expect(plan.props).toMatchObject({
      claw_job_id: `job:${jobId}`,
      claw_plan_hash: job.plan_hash_b64u,
      claw_policy_hash: job.policy_hash_b64u,
    });
    expect(await chatPostRow(w, root.id)).toMatchObject({ action: 'run', job_id: jobId });
  });

  it('a second run in a thread that already has a job is refused', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    const again = say('farid', RUN, root.id);
    expect((await answerTo(w, again)).message).toBe(
      `@farid no job: this thread already belongs to job:${jobId}; start a new thread`,
    );
    expect(await jobCount()).toBe(1);
  });
});

describe('approvals and denials in the thread', () => {
  it('acknowledges each approval with a reaction and a reply saying what is missing; refuses duplicates; quorum mints once', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    const chioma = say('chioma', approve(jobId), root.id);
    const counted = await answerTo(w, chioma);
    expect(counted.message).toBe(
      `Approval by @chioma counted for job:${jobId} step \`post-summary\`; still needed: 1 more approval from ops-oncall.`,
    );
    await eventually(() => reacted(w, chioma.id, 'white_check_mark'), 'reaction on the approval');
    expect(await decisionsOn(w, chioma.id)).toMatchObject([
      { outcome: 'accepted', reason_code: 'APPROVAL_COUNTED', user_id: w.ids.chioma, job_id: jobId },
    ]);

    // The same person again: recorded, refused, still one approval.
    const twice = say('chioma', approve(jobId), root.id);
    expect((await answerTo(w, twice)).message).toMatch(
      /^@chioma not counted: your approval of step post-summary already counts \(ERR_DUPLICATE_APPROVAL\)\.$/,
    );
    await eventually(() => reacted(w, twice.id, 'x'), 'x on the duplicate');
    await expectRejected(w, twice.id, 'ERR_DUPLICATE_APPROVAL', jobId);
    // dmitri is in the same group as chioma: distinct groups are required, so he does not complete it.
    const dmitri = say('dmitri', approve(jobId), root.id);
    expect((await answerTo(w, dmitri)).message).toContain('still needed: 1 more approval from ops-oncall');
    expect(await countedApprovals(w, jobId)).toHaveLength(2);
    expect(await tokensOf(w, jobId)).toEqual([]);

    const alice = say('alice', approve(jobId), root.id);
    const minted = await botSays(w, root.id, 'approved by');
    expect(minted.message).toMatch(
      new RegExp(
        `^:white_check_mark: job:${jobId} step \`post-summary\` approved by @(chioma \\(sec-reviewers\\)|dmitri \\(sec-reviewers\\)), @alice \\(ops-oncall\\); CST \`[0-9a-f-]{36}\` for \`agent:ops-mattermost-1\`, expires \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC$`,
      ),
    );
    await eventually(() => reacted(w, alice.id, 'white_check_mark'), 'reaction on the quorum approval');
    const tokens = await tokensOf(w, jobId);
    expect(tokens).toHaveLength(1);
    expect(minted.message).toContain(tokens[0]!.jti);
    expect(minted.props.claw_cst_jti).toBe(tokens[0]!.jti);
    for (const p of w.sandbox.postsIn(w.channel)) expect(p.message).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);

    // After quorum: a further approval is refused, nothing is minted again.
    const late = say('alice', approve(jobId), root.id);
    expect((await answerTo(w, late)).message).toContain(
      'not counted: step post-summary is already approved (ERR_STEP_DECIDED).',
    );
    expect(await tokensOf(w, jobId)).toHaveLength(1);
  });

  it('DENY with a reason closes the job, revokes its tokens and posts the bundle; later approvals are refused', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');

    const bare = say('dmitri', `DENY job:${jobId} step:${GATED}`, root.id);
    expect((await answerTo(w, bare)).message).toBe(
      `@dmitri not counted: a reason is required. Reply with exactly: \`DENY job:${jobId} step:post-summary <reason>\``,
    );
    expect(await decisionsOn(w, bare.id)).toEqual([]);
    const outsider = say('outsider', `DENY job:${jobId} step:${GATED} I do not like it`, root.id);
    expect((await answerTo(w, outsider)).message).toMatch(
      /^@outsider not counted: only members of ops-oncall or sec-reviewers may decide step post-summary \(ERR_NOT_ELIGIBLE\)\.$/,
    );
    await expectRejected(w, outsider.id, 'ERR_NOT_ELIGIBLE', jobId);
    const self = say('bruno', `DENY job:${jobId} step:${GATED} changed my mind`, root.id);
    expect((await answerTo(w, self)).message).toMatch(
      /^@bruno not counted: the requester cannot deny their own job \(ERR_SELF_APPROVAL\)\.$/,
    );
    await expectRejected(w, self.id, 'ERR_SELF_APPROVAL', jobId);

    const deny = say('dmitri', `DENY job:${jobId} step:${GATED} not during the change freeze`, root.id);
    expect((await answerTo(w, deny)).message).toBe(
      `:no_entry: job:${jobId} step \`post-summary\` denied by @dmitri: not during the change freeze. The job is closed.`,
    );
    await eventually(() => reacted(w, deny.id, 'no_entry'), 'no_entry reaction');
    expect(await decisionsOn(w, deny.id)).toMatchObject([
      {
        outcome: 'accepted',
        reason_code: 'STEP_DENIED',
        kind: 'deny',
        reason: 'not during the change freeze',
      },
    ]);
    await expectEnded(root.id, jobId, 'denied');
    expectBefore(root.id, `reply:${deny.id}`, `job:${jobId}:ended`);
    expect(await tokensOf(w, jobId)).toEqual([]);

    const late = say('alice', approve(jobId), root.id);
    expect((await answerTo(w, late)).message).toMatch(
      /^@alice not counted: job:\d+ is [a-z]+ \(ERR_JOB_CLOSED\)\.$/,
    );
    await expectRejected(w, late.id, 'ERR_JOB_CLOSED');
    expect(await tokensOf(w, jobId)).toEqual([]);
  });

  it('near misses are answered with the exact phrase and never count, even from an eligible approver', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    const phrase = approve(jobId);
    const cases: [string, string][] = [
      [phrase.toLowerCase(), 'the phrase is case-sensitive'],
      [`APPROVE  job:${jobId}   step:${GATED}`, 'use single spaces on one line'],
      [`APPROVE job:${jobId}\nstep:${GATED}`, 'use single spaces on one line'],
      [
        phrase.replace('A', '\u0410').replace('O', '\u041e'),
        'it contains characters that only look like the phrase',
      ], // Cyrillic А, О
      [phrase.replace(' ', '\u00a0'), 'it contains characters that only look like the phrase'], // no-break space
      [`APPROVE job:${jobId} step:${GATED}\u200b`, 'it contains characters that only look like the phrase'],
      [`\`${phrase}\``, 'code formatting never counts'],
      [`\`\`\`\n${phrase}\n\`\`\``, 'code formatting never counts'],
      [`> ${phrase}`, 'quoted text never counts'],
      [`${phrase} please`, 'nothing else may be in the message'],
      [`Looks good.\n${phrase}`, 'nothing else may be in the message'],
      [`Approved job:${jobId} step:${GATED}`, 'it is not the exact phrase'],
    ];
    for (const [message, why, expected = phrase] of [
      ...cases,
      [`APPROVE job:${jobId}`, 'the step is missing', `APPROVE job:${jobId} step:<step>`],
      [
        `APPROVE job:0${jobId} step:${GATED}`,
        'the job number is not valid',
        `APPROVE job:${jobId} step:${GATED}`,
      ],
    ]) {
      const p = say('alice', message!, root.id);
      const answer = await answerTo(w, p);
      expect(answer.message, message).toBe(`@alice not counted: ${why}. Reply with exactly: \`${expected}\``);
      expect(answer.root_id).toBe(root.id);
      await eventually(() => reacted(w, p.id, 'x'), 'x reaction');
      expect(await decisionsOn(w, p.id), message).toEqual([]);
      expect(await chatPostRow(w, p.id)).toMatchObject({ action: 'near_miss', job_id: null });
    }
    expect(await countedApprovals(w, jobId)).toEqual([]);
    expect(await tokensOf(w, jobId)).toEqual([]);
    // The exact phrase still works for her afterwards.
    const exact = say('alice', phrase, root.id);
    expect((await answerTo(w, exact)).message).toContain('Approval by @alice counted');
  });

  it('refuses ineligible approvers and the requester, and records each refusal', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    for (const who of ['outsider', 'erin', 'farid'] as const) {
      const p = say(who, approve(jobId), root.id);
      expect((await answerTo(w, p)).message).toBe(
        `@${who} not counted: only members of ops-oncall or sec-reviewers may decide step post-summary (ERR_NOT_ELIGIBLE).`,
      );
      await eventually(() => reacted(w, p.id, 'x'), 'x reaction');
      await expectRejected(w, p.id, 'ERR_NOT_ELIGIBLE', jobId);
    }
    // bruno is in ops-oncall, but he asked for the job.
    const self = say('bruno', approve(jobId), root.id);
    expect((await answerTo(w, self)).message).toMatch(
      /^@bruno not counted: the requester cannot approve their own job \(ERR_SELF_APPROVAL\)\.$/,
    );
    await expectRejected(w, self.id, 'ERR_SELF_APPROVAL', jobId);
    expect(await countedApprovals(w, jobId)).toEqual([]);
    // Refusals on an open job are in its event chain (and so in its bundle).
    const events = await w.d.db
      .selectFrom('job_events')
      .select('event_type')
      .where('job_id', '=', jobId)
      .where('event_type', '=', 'approval_rejected')
      .execute();
    expect(events).toHaveLength(4);
  });

  it('approvals outside the job’s thread are refused: channel root, another thread, another job, another channel', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    const other = await requestJob(w, 'farid');
    const chatter = say('grace', 'unrelated discussion');

    const atRoot = say('alice', approve(jobId));
    const inChatter = say('alice', approve(jobId), chatter.id);
    const inOtherJob = say('alice', approve(jobId), other.root.id);
    const otherChannelRoot = say('alice', 'over here', undefined, w.otherChannel);
    const inOtherChannel = say('alice', approve(jobId), otherChannelRoot.id, w.otherChannel);
    for (const p of [atRoot, inChatter, inOtherJob, inOtherChannel]) {
      const answer = await answerTo(w, p);
      expect(answer.message).toBe(
        `@alice not counted: decisions count only in the job’s own thread (ERR_WRONG_THREAD).`,
      );
      // The answer goes where the approval was posted, not into the job's thread.
      expect(answer.channel_id).toBe(p.channel_id);
      expect(answer.root_id).toBe(p.root_id || p.id);
      await expectRejected(w, p.id, 'ERR_WRONG_THREAD', jobId);
    }
    expect(w.botReplies(root.id).filter((p) => p.message.includes('ERR_WRONG_THREAD'))).toEqual([]);
    expect(await countedApprovals(w, jobId)).toEqual([]);
    expect(await countedApprovals(w, other.jobId)).toEqual([]);
  });

  it('unknown job, unknown step and a step that needs no approval are refused with the reason', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');

    const noJob = say('alice', approve(jobId + 997), root.id);
    expect((await answerTo(w, noJob)).message).toBe(
      `@alice not counted: job:${jobId + 997} does not exist (ERR_JOB_NOT_FOUND).`,
    );
    await expectRejected(w, noJob.id, 'ERR_JOB_NOT_FOUND');
    expect(await decisionsOn(w, noJob.id)).toMatchObject([{ job_id: null, named_job: jobId + 997 }]);

    const noStep = say('alice', approve(jobId, 'post-summary2'), root.id);
    expect((await answerTo(w, noStep)).message).toBe(
      `@alice not counted: job:${jobId} has no step post-summary2; its steps are search-kb, read-runbook, fetch-status, post-summary (ERR_STEP_NOT_FOUND).`,
    );
    await expectRejected(w, noStep.id, 'ERR_STEP_NOT_FOUND', jobId);

    const auto = say('alice', approve(jobId, 'search-kb'), root.id);
    expect((await answerTo(w, auto)).message).toMatch(
      /^@alice not counted: step [a-z-]+ runs without approval \(ERR_STEP_NOT_GATED\)\.$/,
    );
    await expectRejected(w, auto.id, 'ERR_STEP_NOT_GATED', jobId);
    expect(await countedApprovals(w, jobId)).toEqual([]);
  });

  it('an approval after the approval window is refused; the job expires and posts its bundle', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    // The policy's shortest approval_ttl_seconds is 60: rather than wait, move the job's deadline
    // into the past, exactly the state the job is in once its window has elapsed.
    await w.d.db
      .updateTable('jobs')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', jobId)
      .execute();

    const late = say('alice', approve(jobId), root.id);
    expect((await answerTo(w, late)).message).toBe(
      `@alice not counted: job:${jobId} has expired (ERR_JOB_EXPIRED).`,
    );
    await expectRejected(w, late.id, 'ERR_JOB_EXPIRED');
    await expectEnded(root.id, jobId, 'expired');
    expect(await tokensOf(w, jobId)).toEqual([]);

    const later = say('chioma', approve(jobId), root.id);
    expect((await answerTo(w, later)).message).toMatch(
      /^@chioma not counted: job:\d+ is expired \(ERR_JOB_EXPIRED\)\.$/,
    );
    await expectRejected(w, later.id, 'ERR_JOB_EXPIRED');
    expect(w.botReplies(root.id).filter((p) => p.message.includes(`**job:${jobId} expired**`))).toHaveLength(
      1,
    );
  });
});

describe('@clawbot status, help, unknown commands', () => {
  it('status shows the job in its own channel and nothing elsewhere', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    await answerTo(w, say('alice', approve(jobId), root.id));

    const inThread = say('grace', `@clawbot status job:${jobId}`, root.id);
    const status = await answerTo(w, inThread);
    expect(status.message).toContain(`**job:${jobId}** is open · policy \`mattermost-agent-prod\``);
    expect(status.message).toContain('| step | gate | status | approvals | CST |');
    expect(status.message).toContain('| `post-summary` | gated | awaiting_approval | 1/2 | — |');
    for (const t of await allTokens(jobId)) {
      expect(status.message).toContain(`| \`${t.step_id}\` | auto | approved | — | \`${t.jti}\` |`);
      expect(status.message).not.toContain(t.compact ?? '\u0000');
    }
    expect(status.props.claw_job_id).toBe(`job:${jobId}`);

    // Anywhere in the same channel works too.
    expect((await answerTo(w, say('grace', `@clawbot status job:${jobId}`))).message).toContain(
      `**job:${jobId}** is open`,
    );

    // Another channel learns nothing about the job, not even that it exists.
    const elsewhere = say('grace', `@clawbot status job:${jobId}`, undefined, w.otherChannel);
    const refused = await answerTo(w, elsewhere);
    expect(refused.message).toBe(`There is no job:${jobId} in this channel.`);
    expect(refused.channel_id).toBe(w.otherChannel);
    expect(await chatPostRow(w, elsewhere.id)).toMatchObject({ action: 'status_refused' });

    const missing = say('grace', '@clawbot status job:4242', root.id);
    expect((await answerTo(w, missing)).message).toBe('There is no job:4242 in this channel.');
    const usage = say('grace', '@clawbot status', root.id);
    expect((await answerTo(w, usage)).message).toBe('Usage: `status job:<n>`');
  });

  it('help explains the commands; an unknown command gets the help and the text quoted, not rendered', async () => {
    await boot();
    const help = await answerTo(w, say('outsider', '@clawbot help'));
    expect(help.message).toContain('`@clawbot run <runbook> key=value …` proposes a job');
    expect(help.message).toContain("`APPROVE job:<n> step:<step>` (exactly, in the job's thread)");
    expect(help.message).toContain('`REVOKE job:<n> <reason>` (security group)');

    const colon = await answerTo(w, say('outsider', '@clawbot: help'));
    expect(colon.message).toBe(help.message);

    const unknown = say('outsider', '@clawbot deploy @channel [now](http://evil.example)');
    const answer = await answerTo(w, unknown);
    expect(answer.message.split('\n')[0]).toBe(
      'I did not understand `deploy @\u200bchannel [now]\u200b(http:\u200b//evil.example)`.',
    );
    expect(answer.message).toContain('`@clawbot run <runbook> key=value …`');
    await eventually(() => reacted(w, unknown.id, 'question'), 'question reaction');
    expect(await chatPostRow(w, unknown.id)).toMatchObject({ action: 'unknown' });

    // A lookalike name is somebody else.
    const lookalike = say('outsider', '@clawbot2 help');
    expect(await handledOf(b!, lookalike.id)).toEqual({ outcome: 'ignored', why: 'not for the bot' });
  });
});

describe('cancel and REVOKE', () => {
  it('cancel: refused for an outsider, done for the requester (job cancelled, tokens revoked, bundle posted)', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');

    const outsider = say('outsider', `@clawbot cancel job:${jobId}`, root.id);
    expect((await answerTo(w, outsider)).message).toBe(
      `@outsider not cancelled: only the requester or the security group may cancel job:${jobId} (ERR_NOT_ELIGIBLE).`,
    );
    await expectRejected(w, outsider.id, 'ERR_NOT_ELIGIBLE', jobId);
    expect(await decisionsOn(w, outsider.id)).toMatchObject([{ kind: 'cancel' }]);
    // alice approves steps but did not ask for this job.
    const approver = say('alice', `@clawbot cancel job:${jobId}`, root.id);
    expect((await answerTo(w, approver)).message).toMatch(/^@alice not cancelled: /);
    await expectRejected(w, approver.id, 'ERR_NOT_ELIGIBLE', jobId);
    // Only in the job's thread.
    const atRoot = say('bruno', `@clawbot cancel job:${jobId}`);
    expect((await answerTo(w, atRoot)).message).toMatch(
      /^@bruno not cancelled: this counts only in the job’s own thread \(ERR_WRONG_THREAD\)\.$/,
    );
    await expectRejected(w, atRoot.id, 'ERR_WRONG_THREAD', jobId);
    const usage = say('bruno', '@clawbot cancel', root.id);
    expect((await answerTo(w, usage)).message).toBe('Usage: `cancel job:<n> [reason]`');
    expect((await jobRow(w, jobId)).status).toBe('open');

    const cancel = say('bruno', `@clawbot cancel job:${jobId} wrong service`, root.id);
    await eventually(() => reacted(w, cancel.id, 'white_check_mark'), 'reaction on the cancel');
    const ended = await expectEnded(root.id, jobId, 'cancelled');
    expect(ended.message.split('\n')[0]).toBe(`**job:${jobId} cancelled** — \`wrong service\``);
    expect(await decisionsOn(w, cancel.id)).toMatchObject([
      { outcome: 'accepted', reason_code: 'JOB_CANCELLED', kind: 'cancel', reason: 'wrong service' },
    ]);
    const tokens = await allTokens(jobId);
    expect(tokens.length).toBeGreaterThan(0);
    for (const t of tokens) expect(t).toMatchObject({ compact: null });
  });

  it('REVOKE: refused for a non-member of security; by security it revokes the job and every token and posts the bundle', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    await answerTo(w, say('alice', approve(jobId), root.id));
    say('chioma', approve(jobId), root.id);
    await botSays(w, root.id, 'approved by');
    expect(await tokensOf(w, jobId)).toHaveLength(1);

    for (const who of ['alice', 'bruno', 'outsider'] as const) {
      const p = say(who, `REVOKE job:${jobId} I want it gone`, root.id);
      expect((await answerTo(w, p)).message).toBe(
        `@${who} not counted: only the security group may revoke a job (ERR_NOT_ELIGIBLE).`,
      );
      const rows = await decisionsOn(w, p.id);
      expect(rows).toMatchObject([{ outcome: 'rejected', reason_code: 'ERR_NOT_ELIGIBLE', kind: 'revoke' }]);
      expect((await jobRow(w, jobId)).status).toBe('open');
      for (const t of await allTokens(jobId)) expect(t.revoked_at).toBeNull();
    }

    const revoke = say('erin', `REVOKE job:${jobId} plan looks exfiltration-shaped`, root.id);
    expect((await answerTo(w, revoke)).message).toBe(
      `:rotating_light: job:${jobId} revoked by @erin: plan looks exfiltration-shaped. Its unredeemed tokens are revoked.`,
    );
    await eventually(() => reacted(w, revoke.id, 'rotating_light'), 'rotating_light reaction');
    expect(await decisionsOn(w, revoke.id)).toMatchObject([
      { outcome: 'accepted', reason_code: 'JOB_REVOKED', kind: 'revoke', user_id: w.ids.erin },
    ]);
    await expectEnded(root.id, jobId, 'revoked');
    expectBefore(root.id, `reply:${revoke.id}`, `job:${jobId}:ended`);
    const tokens = await allTokens(jobId);
    expect(tokens).toHaveLength(4);
    for (const t of tokens)
      expect(t).toMatchObject({ compact: null, revoke_reason: expect.stringContaining('job revoked') });

    const again = say('chioma', `REVOKE job:${jobId} twice`, root.id);
    expect((await answerTo(w, again)).message).toMatch(
      /^@chioma not counted: job:\d+ is already revoked \(ERR_JOB_REVOKED\)\.$/,
    );
  });
});

describe('run requests that make no job', () => {
  it('in a channel no policy allowlists', async () => {
    await boot();
    const p = say('bruno', RUN, undefined, w.otherChannel);
    expect((await answerTo(w, p)).message).toBe(
      `@bruno no job: channel ${w.otherChannel} takes no jobs: no policy allows this channel (ERR_CHANNEL_CLOSED)`,
    );
    await eventually(() => reacted(w, p.id, 'x'), 'x reaction');
    expect(await jobCount()).toBe(0);
    expect(await chatPostRow(w, p.id)).toMatchObject({ action: 'run:ERR_CHANNEL_CLOSED', job_id: null });
  });

  it('in a direct message', async () => {
    await boot();
    const dm = w.sandbox.createDirectChannel(w.ids.bruno, w.botUserId);
    const p = w.sandbox.createPost(w.ids.bruno, { channel_id: dm.id, message: RUN });
    const answer = await answerTo(w, p, dm.id);
    expect(answer.message).toBe(
      '@bruno no job: jobs are requested in an allowlisted channel, not in direct messages',
    );
    expect(answer.channel_id).toBe(dm.id);
    expect(await jobCount()).toBe(0);
    // Help works in a DM.
    const help = w.sandbox.createPost(w.ids.bruno, { channel_id: dm.id, message: '@clawbot help' });
    expect((await answerTo(w, help, dm.id)).message).toContain('**claw-approvals**');
  });

  it('with bad params, an unknown runbook or no runbook: the problem is named', async () => {
    await boot();
    const cases: [string, string][] = [
      [
        '@clawbot run service-context service=payments-api',
        'missing required parameter query; missing required parameter notify_channel (ERR_PLAN_INVALID)',
      ],
      [
        '@clawbot run service-context service=Payments_API query=x notify_channel=ops',
        'service does not match ^[a-z0-9][a-z0-9-]{0,62}$ (ERR_PLAN_INVALID)',
      ],
      [
        '@clawbot run service-context service=a service=b query=x notify_channel=ops',
        'service is given twice',
      ],
      [
        '@clawbot run service-context service=a query=x notify_channel=ops dry_run=true',
        'unknown parameter "dry_run" (ERR_PLAN_INVALID)',
      ],
      ['@clawbot run service-context service=a oops', '`oops` is not key=value'],
      [
        '@clawbot run deploy-prod service=a',
        'unknown runbook "deploy-prod"; this channel offers: service-context (ERR_PLAN_INVALID)',
      ],
      ['@clawbot run', 'name a runbook: run <runbook> key=value …'],
    ];
    for (const [message, problem] of cases) {
      const p = say('bruno', message);
      const answer = await answerTo(w, p);
      expect(answer.message, message).toBe(`@bruno no job: ${problem}`);
      expect(await jobCount()).toBe(0);
    }
  });

  it('by someone who is not in a requester group', async () => {
    await boot();
    const p = say('alice', RUN);
    expect((await answerTo(w, p)).message).toBe(
      `@alice no job: user @alice is not in a requester group of mattermost-agent-prod (ERR_NOT_A_REQUESTER)`,
    );
    expect(await jobCount()).toBe(0);
    expect(await decisionsOn(w, p.id)).toEqual([]);
  });
});

describe('oversized messages', () => {
  it('a mention over the limit, and an approval with a long tail, are answered and change nothing', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    const long = `${RUN} ${'note=x '.repeat(400)}`;
    const p = say('farid', long);
    expect((await answerTo(w, p)).message).toBe(
      `@farid that message is too long for me (${long.length} characters; commands are at most 2000).`,
    );
    expect(await jobCount()).toBe(1);

    const tail = `${approve(jobId)} ${'because '.repeat(MAX_COMMAND_LENGTH / 8 + 10)}`;
    const q = say('alice', tail, root.id);
    expect((await answerTo(w, q)).message).toBe(
      `@alice not counted: the message is too long. Reply with exactly: \`${approve(jobId)}\``,
    );
    expect(await decisionsOn(w, q.id)).toEqual([]);

    // The largest post Mattermost accepts, as chatter: read, ignored, no work.
    const huge = say('alice', 'x'.repeat(16383), root.id);
    expect(await handledOf(b!, huge.id)).toEqual({ outcome: 'ignored', why: 'not for the bot' });
    expect(await countedApprovals(w, jobId)).toEqual([]);
  });
});

describe('the flood limit', () => {
  it('answers at most complaintsPerMinute refusals per user, and still records every decision', async () => {
    const limit = 3;
    await boot(limit);
    const { root, jobId } = await requestJob(w, 'bruno');
    const posts: ChatPost[] = [];
    // Exact approvals (decisions, refused) in the thread, near misses and help at the channel root:
    // posts in different threads are handled concurrently.
    for (let i = 0; i < 4; i++) posts.push(say('outsider', approve(jobId), root.id));
    for (let i = 0; i < 4; i++) posts.push(say('outsider', `approve job:${jobId} step:${GATED}`));
    posts.push(say('outsider', '@clawbot help'), say('outsider', '@clawbot frobnicate'));
    for (const p of posts) expect(await handledOf(b!, p.id)).toMatchObject({ outcome: 'handled' });

    // Everyone else is still answered; once alice's answer is out, everything queued before it is too.
    const alice = say('alice', approve(jobId), root.id);
    expect((await answerTo(w, alice)).message).toContain('Approval by @alice counted');

    const answered = posts.filter((p) =>
      botPosts(w).some((r) => r.props.claw_outbox_key === `reply:${p.id}`),
    );
    expect(answered).toHaveLength(limit);
    expect(
      posts.filter((p) => reacted(w, p.id, 'x') || reacted(w, p.id, 'question')).length,
    ).toBeLessThanOrEqual(limit);
    const complaints = await w.d.db
      .selectFrom('outbox')
      .select('id')
      .where('complaint_user_id', '=', w.ids.outsider)
      .execute();
    expect(complaints).toHaveLength(limit);

    // Every refused decision is recorded, answered or not; every near miss is remembered.
    const decisions = await w.d.db
      .selectFrom('decisions')
      .selectAll()
      .where('user_id', '=', w.ids.outsider)
      .execute();
    expect(decisions).toHaveLength(4);
    for (const d of decisions)
      expect(d).toMatchObject({ outcome: 'rejected', reason_code: 'ERR_NOT_ELIGIBLE' });
    for (const p of posts.slice(4, 8))
      expect(await chatPostRow(w, p.id)).toMatchObject({ action: 'near_miss' });
    expect(await tokensOf(w, jobId)).toEqual([]);
  });
});
