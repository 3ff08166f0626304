import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  approvalCountedMessage,
  code,
  deniedMessage,
  endedMessage,
  helpMessage,
  inert,
  mintedMessage,
  nearMissMessage,
  notUnderstoodMessage,
  refusalMessage,
  revokedMessage,
  statusMessage,
  stepResultMessage,
  withdrawnMessage,
} from '../../src/presenter/messages.js';
import { MENTION_TOKEN } from '../../src/chat/mention-token.js';
import { planMessage } from '../helpers/plan-board.js';
import {
  MAX_MENTION_LENGTH,
  notFromAPerson,
  parseMention,
  parseParams,
  routePost,
} from '../../src/bot/route-post.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import type { JobView } from '../../src/jobs/job-view.js';
import type { ClassifiedStep } from '../../src/jobs/plan.js';

const BOT = { id: 'bot0000000000000000000000a', username: 'clawbot' };
const ALICE = 'fn5tnqd3rq1k6a6rjes4egzp8n';

function post(message: string, over: Partial<ChatPost> = {}): ChatPost {
  return {
    id: 'p'.repeat(26),
    create_at: 1,
    update_at: 1,
    edit_at: 0,
    delete_at: 0,
    user_id: ALICE,
    channel_id: 'c'.repeat(26),
    root_id: 'r'.repeat(26),
    original_id: '',
    message,
    type: '',
    props: {},
    ...over,
  };
}

const route = (message: string, over: Partial<ChatPost> = {}) => routePost(post(message, over), BOT);
const mentionOf = (message: string) => {
  const i = route(message);
  if (i.kind !== 'mention') throw new Error(`not a mention: ${JSON.stringify(i)}`);
  return i.command;
};

describe('notFromAPerson: only a person’s normal post can act (SPEC section 2 rule 1)', () => {
  it('accepts a plain post by a person', () => {
    expect(notFromAPerson(post('APPROVE job:1 step:a'), BOT.id)).toBeNull();
    expect(notFromAPerson(post('hi', { props: { disable_group_highlight: true } }), BOT.id)).toBeNull();
  });

  it('ignores the bot’s own posts, whatever they say', () => {
    expect(notFromAPerson(post('APPROVE job:1 step:a', { user_id: BOT.id }), BOT.id)).toBe('own post');
    // The copy of an old version that an edit leaves behind (returned by `since` queries).
    expect(
      notFromAPerson(post('APPROVE job:1 step:a', { original_id: 'o'.repeat(26), delete_at: 5 }), BOT.id),
    ).toBe('old version of an edited post');
  });

  it.each([
    ['system_join_channel'],
    ['system_header_change'],
    ['system_ephemeral'],
    ['me'],
    ['custom_poll'],
    ['slack_attachment'],
  ])('ignores posts of type %s', (type) => {
    expect(notFromAPerson(post('APPROVE job:1 step:a', { type }), BOT.id)).toBe(`post type ${type}`);
  });

  it.each([
    [{ from_webhook: 'true' }, 'webhook post'],
    [{ from_webhook: true }, 'webhook post'],
    [{ from_bot: 'true' }, 'bot post'],
    [{ from_plugin: 'true' }, 'plugin post'],
    [{ from_oauth_app: 'true' }, 'OAuth app post'],
    [{ override_username: 'chioma' }, 'overridden username'],
    [{ override_username: '' }, 'overridden username'],
    // SPEC: the props must be absent; an odd value is no excuse.
    [{ from_webhook: 'false' }, 'webhook post'],
    [{ from_bot: '1' }, 'bot post'],
    [{ from_webhook: '' }, 'webhook post'],
  ])('ignores posts whose props carry %j', (props, why) => {
    expect(notFromAPerson(post('APPROVE job:1 step:a', { props }), BOT.id)).toBe(why);
  });

  it('routes such posts to ignore before reading a word', () => {
    expect(route('APPROVE job:1 step:a', { props: { from_webhook: 'true' } })).toEqual({
      kind: 'ignore',
      why: 'webhook post',
    });
    expect(route('@clawbot run x', { type: 'system_join_channel' })).toEqual({
      kind: 'ignore',
      why: 'post type system_join_channel',
    });
    expect(route('@clawbot help', { user_id: BOT.id })).toEqual({ kind: 'ignore', why: 'own post' });
  });
});

describe('routePost: decisions', () => {
  it('exact phrases are decisions', () => {
    expect(route('APPROVE job:7 step:post-summary')).toEqual({
      kind: 'decision',
      command: { kind: 'approve', jobId: 7, step: 'post-summary' },
    });
    expect(route('  DENY job:7 step:post-summary not today \n')).toEqual({
      kind: 'decision',
      command: { kind: 'deny', jobId: 7, step: 'post-summary', reason: 'not today' },
    });
    expect(route('REVOKE job:7 leaked')).toEqual({
      kind: 'decision',
      command: { kind: 'revoke', jobId: 7, reason: 'leaked' },
    });
  });

  it.each([
    ['approve job:7 step:post-summary', 'case'],
    ['APPROVE  job:7 step:post-summary', 'spacing'],
    ['АPPROVE job:7 step:post-summary', 'lookalike'], // Cyrillic А
    ['`APPROVE job:7 step:post-summary`', 'code'],
    ['> APPROVE job:7 step:post-summary', 'quoted'],
    [`APPROVE job:7 step:post-summary ${'x'.repeat(700)}`, 'too_long'],
  ])('near miss %j is answered with the exact phrase (%s)', (message, reason) => {
    expect(route(message)).toEqual({
      kind: 'decision',
      command: { kind: 'near_miss', intent: 'approve', reason, expected: 'APPROVE job:7 step:post-summary' },
    });
  });

  it('a phrase on a later line of a short message is answered as a near miss, unless quoted', () => {
    for (const [message, expected] of [
      ['lgtm\nAPPROVE job:7 step:post-summary', 'APPROVE job:7 step:post-summary'],
      ['> can someone approve?\r\nAPPROVE job:7 step:post-summary', 'APPROVE job:7 step:post-summary'],
      ['lgtm\napprove job:7 step:post-summary', 'APPROVE job:7 step:post-summary'],
      ['no.\nDENY job:7 step:post-summary not now', 'DENY job:7 step:post-summary <reason>'],
      ['see below\nREVOKE job:7 leaked', 'REVOKE job:7 <reason>'],
    ]) {
      expect(route(message!), message).toEqual({
        kind: 'decision',
        command: {
          kind: 'near_miss',
          intent: expected!.split(' ')[0]!.toLowerCase(),
          reason: 'extra_text',
          expected,
        },
      });
    }
    for (const message of [
      'alice wrote:\n> APPROVE job:7 step:post-summary',
      `${'x'.repeat(700)}\nAPPROVE job:7 step:post-summary`,
      `${'line\n'.repeat(12)}APPROVE job:7 step:post-summary`,
    ]) {
      expect(route(message), message).toEqual({ kind: 'ignore', why: 'not for the bot' });
    }
  });

  it('chatter that merely contains a phrase is not for the bot', () => {
    expect(route('someone said APPROVE job:1 step:post-summary')).toEqual({
      kind: 'ignore',
      why: 'not for the bot',
    });
    expect(route('lgtm')).toEqual({ kind: 'ignore', why: 'not for the bot' });
  });
});

describe('routePost: mentions', () => {
  it('reads @clawbot at the start, in any case, after leading whitespace, with : or ,', () => {
    for (const m of [
      '@clawbot help',
      '@ClawBot help',
      '@CLAWBOT HELP',
      '   @clawbot help',
      '\n\t@clawbot   help  ',
      '@clawbot: help',
      '@clawbot, help',
      '@clawbot:help',
    ]) {
      expect(mentionOf(m), m).toEqual({ kind: 'help' });
    }
    expect(mentionOf('@clawbot')).toEqual({ kind: 'help' });
  });

  it('does not answer lookalike or longer usernames, or a mention later in the text', () => {
    for (const m of [
      '@clawbot2 help',
      '@clawbot_ help',
      '@clawbot-dev help',
      '@clawbot.test help',
      '@clawbots help',
      '@сlawbot help', // Cyrillic с
      '@claw bot help',
      'clawbot help',
      'hey @clawbot help',
      '`@clawbot help`',
      '> @clawbot help',
    ]) {
      expect(route(m), m).toEqual({ kind: 'ignore', why: 'not for the bot' });
    }
  });

  it('escapes the bot username: a dot in it is not a wildcard', () => {
    const dotted = { id: BOT.id, username: 'claw.bot' };
    expect(routePost(post('@claw.bot help'), dotted)).toEqual({ kind: 'mention', command: { kind: 'help' } });
    expect(routePost(post('@clawxbot help'), dotted)).toEqual({ kind: 'ignore', why: 'not for the bot' });
  });

  it('status, cancel, help and unknown verbs', () => {
    expect(mentionOf('@clawbot status job:12')).toEqual({ kind: 'status', jobId: 12 });
    expect(mentionOf('@clawbot STATUS job:12')).toEqual({ kind: 'status', jobId: 12 });
    for (const bad of ['status', 'status 12', 'status job:012', 'status job:x', 'status job:-1'])
      expect(mentionOf(`@clawbot ${bad}`), bad).toEqual({ kind: 'status', jobId: null });
    expect(mentionOf('@clawbot cancel job:3 wrong service')).toEqual({
      kind: 'cancel',
      jobId: 3,
      reason: 'wrong service',
    });
    expect(mentionOf('@clawbot cancel')).toEqual({ kind: 'cancel', jobId: null, reason: '' });
    expect(mentionOf('@clawbot deploy everything')).toEqual({ kind: 'unknown', text: 'deploy everything' });
    expect(mentionOf(`@clawbot ${'y'.repeat(500)}`)).toEqual({ kind: 'unknown', text: 'y'.repeat(80) });
  });

  it('an oversized mention is refused as too long, without parsing it', () => {
    const long = `@clawbot run service-context ${'a=b '.repeat(600)}`;
    expect(long.length).toBeGreaterThan(MAX_MENTION_LENGTH);
    expect(mentionOf(long)).toEqual({ kind: 'too_long', length: long.length, limit: MAX_MENTION_LENGTH });
    const justFits = `@clawbot help${' '.repeat(MAX_MENTION_LENGTH - 13)}`;
    expect(mentionOf(justFits)).toEqual({ kind: 'help' });
  });

  it('run: runbook and params, quoted values keep their spaces', () => {
    expect(
      mentionOf(
        '@clawbot run service-context service=payments-api query="latency spikes" notify_channel=payments-oncall',
      ),
    ).toEqual({
      kind: 'run',
      runbook: 'service-context',
      params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
      problems: [],
    });
    expect(mentionOf('@clawbot run service-context\nservice=a\tquery="a=b | c"')).toEqual({
      kind: 'run',
      runbook: 'service-context',
      params: { service: 'a', query: 'a=b | c' },
      problems: [],
    });
    expect(mentionOf('@clawbot RUN svc empty= q=""')).toMatchObject({
      runbook: 'svc',
      params: { empty: '', q: '' },
      problems: [],
    });
  });

  it('run without a runbook names the problem once, and nothing else', () => {
    expect(mentionOf('@clawbot run')).toEqual({
      kind: 'run',
      runbook: '',
      params: {},
      problems: ['name a runbook: run <runbook> key=value …'],
    });
    expect(mentionOf('@clawbot run Service-Context')).toMatchObject({
      problems: ['name a runbook: run <runbook> key=value …'],
    });
  });
});

describe('parseMention: the text after the mention', () => {
  it('reads the verb case-insensitively, whatever the spacing', () => {
    expect(parseMention('  HeLp  ')).toEqual({ kind: 'help' });
    expect(parseMention('')).toEqual({ kind: 'help' });
    expect(parseMention('\tstatus\n job:3')).toEqual({ kind: 'status', jobId: 3 });
    expect(parseMention(' run  svc \n a=1  b="x y"')).toEqual({
      kind: 'run',
      runbook: 'svc',
      params: { a: '1', b: 'x y' },
      problems: [],
    });
  });

  it('bounds what it keeps of free text', () => {
    expect(parseMention(`cancel job:1 ${'r'.repeat(1000)}`)).toEqual({
      kind: 'cancel',
      jobId: 1,
      reason: 'r'.repeat(300),
    });
    expect(parseMention('cancel job:1   two   spaces')).toMatchObject({ reason: 'two spaces' });
  });
});

describe('parseParams', () => {
  it('reports duplicate keys, invalid keys and words that are not key=value', () => {
    expect(parseParams('service=a service=b')).toEqual({
      params: { service: 'a' },
      problems: ['service is given twice'],
    });
    expect(parseParams('Service=a __proto__=x 1x=2 a-b=c')).toEqual({
      params: {},
      problems: [
        '`Service` is not a parameter name',
        '`__proto__` is not a parameter name',
        '`1x` is not a parameter name',
        '`a-b` is not a parameter name',
      ],
    });
    expect(parseParams('lonely =x')).toEqual({
      params: {},
      problems: ['`lonely` is not key=value', '`=x` is not key=value'],
    });
  });

  it('an unterminated quote does not swallow the rest', () => {
    expect(parseParams('query="latency spikes service=x')).toEqual({
      params: { query: '"latency', service: 'x' },
      problems: ['`spikes` is not key=value'],
    });
  });

  it('no prototype pollution: keys land as own properties only', () => {
    const { params } = parseParams('constructor=x tostring=y');
    expect(Object.hasOwn(params, 'constructor')).toBe(true);
    expect(({} as Record<string, unknown>).tostring).toBeUndefined();
  });

  it('echoed words are quoted: no backtick escape, no mention, bounded length', () => {
    const { problems } = parseParams('`@channel` [x](http://evil.example) <@fn5tnqd3rq1k6a6rjes4egzp8n>');
    expect(problems).toHaveLength(3);
    for (const p of problems) {
      expect(p).toMatch(/^`[^`]*` is not key=value$/);
      expect(p).not.toMatch(/@(channel|fn5)/);
      MENTION_TOKEN.lastIndex = 0;
      expect(MENTION_TOKEN.test(p)).toBe(false);
    }
    expect(parseParams('x'.repeat(500)).problems[0]!.length).toBeLessThan(60);
  });

  it('never throws and never loses a key=value word (property)', () => {
    const word = fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/);
    const value = fc.stringMatching(/^[^\s"]{0,12}$/);
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(word, value), { selector: ([k]) => k, maxLength: 6 }), (pairs) => {
        const { params, problems } = parseParams(pairs.map(([k, v]) => `${k}=${v}`).join('  '));
        expect(problems).toEqual([]);
        expect(params).toEqual(Object.fromEntries(pairs));
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        expect(() => parseParams(text)).not.toThrow();
      }),
    );
  });
});

const HOSTILE =
  'a|b\nc\r\n| x | y |`@channel` <@fn5tnqd3rq1k6a6rjes4egzp8n> @alice [click](http://evil.example)';
const COMPACT = 'eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJlc2lnbmF0dXJl';

/** No line of `text` is a table row with more cells than the header says. */
function tableRows(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('|'));
}

const outsideCode = (text: string) => text.replace(/`[^`\n]*`/g, ' ');

/** A `@word` that Mattermost would read as a mention, outside code spans. */
function liveMentions(text: string): string[] {
  return outsideCode(text).match(/@[\p{L}\p{N}._-]+/gu) ?? [];
}

function gated(id: string, summary: string): ClassifiedStep {
  return {
    id,
    tool: 'send_message',
    args: { text: 'payments-api: p99 latency doubled since 09:40' },
    summary,
    simulationStep: null,
    classification: {
      gate: 'gated',
      rule: {
        allowed_approver_groups: ['ops-oncall', 'sec-reviewers'],
        approval_phrase: 'APPROVE job:{job_id} step:{step}',
        required_approvals: 2,
        distinct_groups: true,
        allow_requester_approval: false,
        approval_ttl_seconds: 3600,
      },
    },
  } as ClassifiedStep;
}

function auto(id: string, summary: string): ClassifiedStep {
  return {
    id,
    tool: 'search',
    args: {},
    summary,
    simulationStep: null,
    classification: { gate: 'auto' },
  } as ClassifiedStep;
}

const minted = {
  step: 'search-kb',
  jti: '11111111-2222-4333-8444-555555555555',
  sub: 'agent:ops-mattermost-1',
  expiresAt: new Date('2026-11-21T10:15:00Z'),
  scopeHash: 'scope-hash',
  counted: [
    { userId: ALICE, group: 'ops-oncall' },
    { userId: 'e8t3kac4ppqwfhe17uzapx175t', group: 'sec-reviewers' },
  ],
  // What a careless caller might pass along: it must never be rendered.
  token: COMPACT,
  compact: COMPACT,
};

describe('messages: the plan post', () => {
  const plan = () =>
    planMessage({
      jobId: 42,
      requesterId: ALICE,
      runbook: 'service-context',
      params: { service: 'payments-api', query: HOSTILE },
      policyName: 'mattermost-agent-prod',
      policyHash: 'AbCdEfGh12345678901234567890123456789012345',
      planHash: 'PlanHash_b64u_0123456789012345678901234567',
      executor: 'agent:ops-mattermost-1',
      expiresAt: new Date('2026-11-21T11:00:00Z'),
      steps: [auto('search-kb', `look for ${HOSTILE}`), gated('post-summary', HOSTILE)],
      minted: [{ ...minted, counted: [] }],
    });

  it('states job, policy name and short hash, plan hash, deadline, and the exact phrase per gated step', () => {
    const text = plan();
    expect(text).toContain('**Plan for job:42**');
    expect(text).toContain('Policy `mattermost-agent-prod` (`AbCdEfGh`)');
    expect(text).toContain('plan hash `PlanHash_b64u_0123456789012345678901234567`');
    expect(text).toContain('approvals close 2026-11-21 11:00:00 UTC');
    expect(text).toContain('| 2 | `post-summary` | `send_message` |');
    expect(text).toContain(
      '2 approvals from ops-oncall, sec-reviewers (distinct groups) | ⏳ 0/2 | `APPROVE job:42 step:post-summary` |',
    );
    expect(text).toMatch(
      /\| 1 \| `search-kb` \| `search` \| [^\n]* \| auto \| ✅ runs without approval · CST `11111111-2222-4333-8444-555555555555` \| — \|/,
    );
    expect(text).toContain('**Status: ⏳ waiting for approval**');
    expect(text).toContain(`requested by <@${ALICE}>`);
  });

  it('runbook params cannot break the table, the code span, or mention anyone', () => {
    const text = plan();
    const rows = tableRows(text);
    expect(rows).toHaveLength(4); // header, separator, two steps
    for (const row of rows) expect(row.split('|')).toHaveLength(9);
    // The params line is one code span, whatever the params hold.
    const first = text.split('\n')[0]!;
    expect(first.match(/`/g)!.length % 2).toBe(0);
    expect(liveMentions(text.replace(/<@[a-z0-9]{26}>/g, ''))).toEqual([]);
    // Only the requester is rendered as a name at delivery.
    expect([...text.matchAll(MENTION_TOKEN)].map((m) => m[1])).toEqual([ALICE]);
    expect(outsideCode(first)).not.toContain('](http');
  });

  it('lists steps minted at creation by jti, never the token', () => {
    const text = plan();
    expect(text).toContain('CST `11111111-2222-4333-8444-555555555555`');
    expect(text).not.toContain(COMPACT);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
  });
});

describe('messages: no token material, no injected mentions', () => {
  const view: JobView = {
    id: 'job:42',
    job_id: 42,
    status: 'cancelled',
    origin: 'mattermost',
    channel_id: 'c',
    root_post_id: 'r',
    requester_id: ALICE,
    executor: 'agent:ops-mattermost-1',
    runbook: 'service-context',
    policy: { name: 'mattermost-agent-prod', policy_hash_b64u: 'h' },
    plan_hash_b64u: 'p',
    created_at: '2026-11-21T10:00:00.000Z',
    expires_at: '2026-11-21T11:00:00.000Z',
    ended_at: null,
    end_reason: HOSTILE,
    bundle_id: 'pb_abc',
    steps: [
      {
        id: 'post-summary',
        tool: 'send_message',
        args: { text: 'payments-api: p99 latency doubled since 09:40' },
        summary: HOSTILE,
        gate: 'gated',
        status: 'approved',
        required_approvals: 2,
        approver_groups: ['ops-oncall'],
        distinct_groups: true,
        approvals: 2,
        simulation_step: null,
        token: Object.assign(
          { jti: minted.jti, expires_at: '2026-11-21T10:15:00.000Z', claimable: true },
          { compact: COMPACT },
        ),
        decision: null,
      },
    ],
  };
  const ended = { jobId: 42, status: 'revoked' as const, reason: HOSTILE, bundleId: 'pb_abc' };

  const all = (): [string, string][] => [
    ['minted', mintedMessage(42, minted)],
    [
      'counted',
      approvalCountedMessage(42, 'post-summary', ALICE, {
        approvals: 1,
        openGroups: ['sec-reviewers'],
        simulationStep: null,
      }),
    ],
    ['denied', deniedMessage(42, 'post-summary', ALICE, HOSTILE)],
    ['revoked', revokedMessage(42, ALICE, HOSTILE)],
    ['ended', endedMessage(ended, 'https://claw.example.test/')],
    ['status', statusMessage(view)],
    ['step result', stepResultMessage(42, 'post-summary', 'succeeded', HOSTILE)],
    ['near miss', nearMissMessage(ALICE, `DENY job:1 step:a ${HOSTILE}`, 'edited')],
    ['not understood', notUnderstoodMessage(HOSTILE, 'clawbot')],
    ['refusal', refusalMessage('ERR_NOT_ELIGIBLE', HOSTILE, ALICE, 'revoke')],
    ['withdrawn', withdrawnMessage(42, 'post-summary', ALICE, 'edited')],
    ['help', helpMessage('clawbot')],
  ];

  it.each(all())('%s: never the token, only its jti', (_name, text) => {
    expect(text).not.toContain(COMPACT);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\./);
  });

  it.each(all())('%s: text from others mentions nobody', (_name, text) => {
    // `<@id>` is the bot's own way to name the people it means; anything else is inert.
    const ours = [...text.matchAll(MENTION_TOKEN)].map((m) => m[1]);
    for (const id of ours) expect([ALICE, minted.counted[1]!.userId]).toContain(id);
    expect(liveMentions(text.replace(MENTION_TOKEN, ''))).toEqual([]);
  });

  it('what nobody vouches for is quoted as code: an unknown command, an edited phrase', () => {
    // Reasons are shown as their author wrote them (attributed); text the bot merely echoes is not.
    for (const text of [
      notUnderstoodMessage(HOSTILE, 'clawbot'),
      nearMissMessage(ALICE, `DENY job:1 step:a ${HOSTILE}`, 'edited'),
    ]) {
      expect(outsideCode(text.split('\n')[0]!)).not.toContain('](http');
      expect(text.split('\n')[0]!.match(/`/g)!.length % 2).toBe(0);
    }
  });

  it('free text stays on one line', () => {
    expect(deniedMessage(1, 's', ALICE, 'a\nb\r\nc').split('\n')).toHaveLength(1);
    expect(endedMessage({ ...ended, reason: 'a\nb' }, null).split('\n')[0]).toBe(
      '**job:42 revoked** — `a b`',
    );
    // Someone's reason is a code span: it cannot pass for the bot's own bold status line.
    expect(endedMessage({ ...ended, reason: '**Status: ✅ completed**' }, null).split('\n')[0]).toBe(
      '**job:42 revoked** — `**Status: ✅ completed**`',
    );
  });

  it('minted: who approved, from which group, the jti, the agent and the expiry', () => {
    expect(mintedMessage(42, minted)).toBe(
      `:white_check_mark: job:42 step \`search-kb\` approved by <@${ALICE}> (ops-oncall), <@e8t3kac4ppqwfhe17uzapx175t> (sec-reviewers); CST \`${minted.jti}\` for \`agent:ops-mattermost-1\`, expires 2026-11-21 10:15:00 UTC`,
    );
  });

  it('status table: one row per step, approvals and jti', () => {
    const rows = tableRows(statusMessage(view));
    expect(rows).toHaveLength(3);
    expect(rows[2]).toBe(`| \`post-summary\` | gated | approved | 2/2 | \`${minted.jti}\` |`);
  });

  it('refusals name what was refused, once', () => {
    // The engine's detail is the reason; the stock reason stands in when there is none.
    expect(refusalMessage('ERR_NOT_ELIGIBLE', 'only members of ops-oncall may decide step s', ALICE)).toBe(
      `<@${ALICE}> not counted: only members of ops-oncall may decide step s (ERR_NOT_ELIGIBLE).`,
    );
    expect(refusalMessage('ERR_NOT_ELIGIBLE', '', ALICE)).toBe(
      `<@${ALICE}> not counted: you are not in an approver group for this (ERR_NOT_ELIGIBLE).`,
    );
    expect(refusalMessage('ERR_NOT_ELIGIBLE', '', ALICE, 'revoke')).toContain(
      'not counted: only the security group may revoke a job (ERR_NOT_ELIGIBLE).',
    );
    expect(refusalMessage('ERR_NOT_ELIGIBLE', '', ALICE, 'cancel')).toContain(
      'not cancelled: only the requester or the security group may cancel a job (ERR_NOT_ELIGIBLE).',
    );
    expect(
      refusalMessage(
        'ERR_SELF_APPROVAL',
        'the requester cannot approve or deny their own job',
        ALICE,
        'deny',
      ),
    ).toContain('not counted: the requester cannot deny their own job (ERR_SELF_APPROVAL).');
    expect(refusalMessage('ERR_SOMETHING_NEW', 'd', ALICE)).toContain('not counted: d (ERR_SOMETHING_NEW)');
  });

  it('inert and code: mentions broken, backticks cannot close the span', () => {
    expect(inert('@channel and <@abc>')).toBe('@\u200bchannel and <@\u200babc>');
    expect(code('a`b``c\nd')).toBe("`a'b'c d`");
  });
});
