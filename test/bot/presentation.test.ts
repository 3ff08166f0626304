import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { argsJson } from '../../src/presenter/messages.js';
import { MENTION_TOKEN, mention } from '../../src/chat/mention-token.js';
import { enqueuePost } from '../../src/chat/outbox.js';
import { createWorld, ready, type RunningBot, startBot, type World } from '../helpers/bot-world.js';
import { answerTo, approve, botSays, createSecurityChannel, requestJob } from '../helpers/bot-thread.js';

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

async function boot(): Promise<RunningBot> {
  b = await startBot(w, { complaintsPerMinute: 1000 });
  await ready(b);
  return b;
}

/** A 26-character Mattermost-style id, wherever it appears. */
const RAW_ID = /(?<![a-z0-9])[a-z0-9]{26}(?![a-z0-9])/;

describe('posts in the thread, as Mattermost receives them', () => {
  it('the plan post shows the gated step’s tool and its full arguments', async () => {
    await boot();
    const root = w.post(
      'bruno',
      '@clawbot run service-context service=payments-api query="p99 see https://evil.example/x @channel" notify_channel=payments-oncall',
    );
    const plan = await answerTo(w, root);
    const args = {
      channel: 'payments-oncall',
      text: 'Context summary for payments-api: p99 see https://evil.example/x @channel',
    };
    expect(plan.message).toContain('**`post-summary`** runs `send_message` with:');
    expect(plan.message).toContain(`\`\`\`json\n${argsJson(args)}\n\`\`\``);
    // Outside the code block, the requester's text links nowhere and mentions nobody.
    const outside = plan.message.replace(/^```json\n[\s\S]*?\n```$/gmu, '');
    expect(outside).not.toMatch(/https:\/\//);
    expect(outside).not.toMatch(/@channel/);
  });

  it('the job-ended post names who denied as @username, never by raw id', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    w.post('dmitri', `DENY job:${jobId} step:post-summary not today`, root.id);
    const ended = await botSays(w, root.id, `**job:${jobId} denied**`);
    expect(ended.message.split('\n')[0]).toBe(
      `**job:${jobId} denied** — step \`post-summary\` denied by @dmitri`,
    );
    for (const post of w.botReplies(root.id)) expect(post.message).not.toMatch(RAW_ID);
  });

  it('a person the server does not know is "an unknown user": no raw id, no guessed name', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    const ghost = 'g0stg0stg0stg0stg0stg0stg0';
    await enqueuePost(
      w.d.db,
      {
        key: 'test:ghost',
        jobId,
        channelId: w.channel,
        rootId: root.id,
        message: `Approval by ${mention(ghost)} and ${mention(w.ids.alice)}`,
      },
      new Date(),
    );
    const post = await botSays(w, root.id, 'Approval by ');
    expect(post.message).toBe('Approval by an unknown user and @alice');
    expect(post.message).not.toContain(ghost);
    expect(post.message).not.toMatch(MENTION_TOKEN);
  });

  it('a refused REVOKE says its reason once', async () => {
    await boot();
    const { root, jobId } = await requestJob(w, 'bruno');
    const p = w.post('alice', `REVOKE job:${jobId} because`, root.id);
    const answer = await answerTo(w, p);
    expect(answer.message).toBe(
      '@alice not counted: only the security group may revoke a job (ERR_NOT_ELIGIBLE).',
    );
    // An approval still works after all that.
    const ok = w.post('alice', approve(jobId), root.id);
    expect((await answerTo(w, ok)).message).toContain('Approval by @alice counted');
  });
});
