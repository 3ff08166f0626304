import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  argsHash,
  argsJson,
  deniedMessage,
  endedMessage,
  inert,
  MATTERMOST_POST_LIMIT,
  noJobMessage,
  notUnderstoodMessage,
  reasonsOnce,
  refusalMessage,
  revokedMessage,
  statusMessage,
  stepResultMessage,
} from '../../src/presenter/messages.js';
import { MENTION_TOKEN } from '../../src/chat/mention-token.js';
import { planMessage, type PlanPostInput } from '../helpers/plan-board.js';
import { BIDI, liveMarkup } from '../helpers/live-markup.js';
import type { JobView } from '../../src/jobs/job-view.js';
import type { ClassifiedStep } from '../../src/jobs/plan.js';
import type { ApprovalRule } from '../../src/policy/types.js';

const ALICE = 'fn5tnqd3rq1k6a6rjes4egzp8n';
const BRUNO = 'f9g6ejxi8rtawyzhfgrt6tynuc';
const PUBLIC = 'https://claw.example.test';

/** Pieces attackers use, so generated strings hit them far more often than random text would. */
const HOSTILE_PIECES = [
  '@',
  '@channel',
  '@here',
  '@all',
  '@alice',
  `<@${BRUNO}>`,
  '<@',
  '>',
  'https://evil.example/x',
  'http://',
  'HTTPS://',
  'ftp://',
  'mailto:a@b.example',
  'www.evil.example',
  'WWW.',
  '[click](https://evil.example)',
  '![img](https://evil.example/p.png)',
  '[x]',
  '](',
  '(',
  ')',
  '~town-square',
  ':',
  '/',
  '`',
  '```',
  '|',
  '\n',
  '\u202e',
  '\u202a',
  '\u2066',
  '\u2069',
  '\u200e',
  '\u200f',
  '\u061c',
  '\u200b',
  'plain words ',
];
const hostile = fc.oneof(
  fc.array(fc.constantFrom(...HOSTILE_PIECES), { maxLength: 24 }).map((p) => p.join('')),
  fc.string({ unit: 'binary', maxLength: 120 }),
);

describe('inert: text from others cannot act in the bot’s voice (property)', () => {
  it('no mention, link, image, channel link or bidi control survives, and nothing else changes', () => {
    fc.assert(
      fc.property(hostile, (s) => {
        const out = inert(s);
        expect(liveMarkup(out)).toEqual([]);
        // Only zero-width spaces are added, and bidi controls shown as U+FFFD.
        const strip = (t: string) => t.replaceAll('\u200b', '');
        expect(strip(out)).toBe(strip(s.replace(new RegExp(BIDI.source, 'gu'), '\ufffd')));
      }),
      { numRuns: 2000 },
    );
  });

  it('examples', () => {
    expect(inert('see https://evil.example and www.evil.example')).toBe(
      'see https:\u200b//evil.example and www\u200b.evil.example',
    );
    expect(inert('![i](x) [a](b) ~town-square @here')).toBe(
      '![i]\u200b(x) [a]\u200b(b) ~\u200btown-square @\u200bhere',
    );
    expect(inert('abc\u202edcba')).toBe('abc\ufffddcba');
  });
});

const rule: ApprovalRule = {
  allowed_approver_groups: ['ops-oncall', 'sec-reviewers'],
  approval_phrase: 'APPROVE job:{job_id} step:{step}',
  required_approvals: 2,
  distinct_groups: true,
  allow_requester_approval: false,
  approval_ttl_seconds: 3600,
};

function step(
  id: string,
  args: Record<string, string | number | boolean>,
  summary = 'a step',
): ClassifiedStep {
  return {
    id,
    tool: 'send_message',
    args,
    summary,
    simulationStep: null,
    classification: { gate: 'gated', rule },
  };
}

function job(over: Partial<PlanPostInput> = {}): PlanPostInput {
  return {
    jobId: 42,
    requesterId: ALICE,
    runbook: 'service-context',
    params: { service: 'payments-api' },
    policyName: 'mattermost-agent-prod',
    policyHash: 'AbCdEfGh12345678901234567890123456789012345',
    planHash: 'PlanHash_b64u_0123456789012345678901234567',
    executor: 'agent:ops-mattermost-1',
    expiresAt: new Date('2026-11-21T11:00:00Z'),
    steps: [step('post-summary', { channel: 'payments-oncall', text: 'p99 doubled' })],
    minted: [],
    ...over,
  };
}

/** The JSON blocks of a post, parsed. */
function jsonBlocks(text: string): unknown[] {
  return [...text.matchAll(/^```json\n([\s\S]*?)\n```$/gmu)].map((m) => JSON.parse(m[1]!) as unknown);
}

describe('the plan post shows what approvers approve', () => {
  it('each gated step’s tool and full arguments, as JSON that parses back exactly', () => {
    const args = {
      channel: 'payments-oncall',
      text: `${'x'.repeat(900)} and the end`,
      limit: 20,
      dry: false,
    };
    const text = planMessage(job({ steps: [step('post-summary', args)] }), PUBLIC);
    expect(text).toContain('**`post-summary`** runs `send_message` with:');
    expect(jsonBlocks(text)).toEqual([args]);
    expect(text).not.toContain('(truncated)');
  });

  it('works for agent-submitted steps: no runbook, no params, the requester asserted by the agent', () => {
    const text = planMessage(
      job({ runbook: null, params: null, assertedBy: 'agent:ops-mattermost-1' }),
      PUBLIC,
    );
    expect(text.split('\n')[0]).toBe(
      `**Plan for job:42** — steps submitted by the executing agent, requester <@${ALICE}> as asserted by agent \`agent:ops-mattermost-1\``,
    );
    expect(text).not.toContain('runbook');
    // The call the bot makes for a chat request still works as before.
    expect(planMessage(job()).split('\n')[0]).toBe(
      `**Plan for job:42** — runbook \`service-context\` \`service=payments-api\`, requested by <@${ALICE}>`,
    );
  });

  it('arguments cannot close the fence, render, mention, reorder text or name anyone (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 12 }), hostile, { maxKeys: 4 }), (args) => {
        const text = planMessage(job({ steps: [step('post-summary', args)] }), PUBLIC);
        // The block is still exactly the arguments: nothing in them ended it early.
        expect(jsonBlocks(text)).toEqual([args]);
        const outside = text.replace(/^```json\n[\s\S]*?\n```$/gmu, '');
        expect(liveMarkup(outside, [ALICE])).toEqual([]);
        expect(BIDI.test(text)).toBe(false);
        expect([...text.matchAll(MENTION_TOKEN)].map((m) => m[1])).toEqual([ALICE]);
      }),
      { numRuns: 300 },
    );
  });

  it('too long for one post: a truncated view, the SHA-256 of the canonical arguments and the plan link', () => {
    const big = Object.fromEntries([...'abcdefgh'].map((k) => [`part_${k}`, `${k} `.repeat(1900)]));
    const small = { channel: 'payments-oncall' };
    const text = planMessage(job({ steps: [step('small', small), step('big', big)] }), PUBLIC);
    expect(text.length).toBeLessThanOrEqual(12_000 + 500);
    expect(text).toContain(`SHA-256 of its canonical (JCS) arguments: \`${argsHash(big)}\``);
    expect(text).toContain(`${PUBLIC}/v1/plans/PlanHash_b64u_0123456789012345678901234567`);
    expect(text).toMatch(/\*\*`big`\*\* runs `send_message` with \(the first [\d,]+ of [\d,]+ characters\):/);
    expect(text).toContain('… (truncated)');
    // The short step is still shown whole; the long one starts as its JSON does.
    expect(text).toContain(`\`\`\`json\n${argsJson(small)}\n\`\`\``);
    expect(text).toContain(argsJson(big).slice(0, 200));
    expect(text).toContain('`APPROVE job:42 step:big`');
  });

  it('the most a plan can hold still fits one Mattermost post, with every phrase', () => {
    const huge = Object.fromEntries(
      Array.from({ length: 32 }, (_, i) => [`k${i}`, `${'y'.repeat(3990)}${i}`]),
    );
    const steps = Array.from({ length: 32 }, (_, i) => ({
      ...step(`step-${String(i).padStart(2, '0')}-${'s'.repeat(50)}`, huge, 'z'.repeat(500)),
      tool: `tool_${'t'.repeat(120)}${i}`,
    }));
    const text = planMessage(job({ steps }), PUBLIC);
    expect(text.length).toBeLessThan(MATTERMOST_POST_LIMIT);
    for (const s of steps) expect(text).toContain(`\`APPROVE job:42 step:${s.id}\``);
    expect(text).toContain(argsHash(huge));
    expect(text).toContain(`${PUBLIC}/v1/plans/`);
  });

  it('without a public URL the link names the route', () => {
    const big = { text: 'w '.repeat(7000) };
    const text = planMessage(job({ steps: [step('big', big)] }), null);
    expect(text).toContain(
      'full plan: `GET /v1/plans/PlanHash_b64u_0123456789012345678901234567` on this server',
    );
  });
});

describe('status', () => {
  const view = (approvals: number | null): JobView => ({
    id: 'job:42',
    job_id: 42,
    status: 'open',
    origin: 'api',
    channel_id: 'c',
    root_post_id: 'r',
    requester_id: ALICE,
    executor: 'agent:ops-mattermost-1',
    runbook: null,
    policy: { name: 'mattermost-agent-prod', policy_hash_b64u: 'h' },
    plan_hash_b64u: 'PlanHash_b64u_0123456789012345678901234567',
    created_at: '2026-11-21T10:00:00.000Z',
    expires_at: '2026-11-21T11:00:00.000Z',
    ended_at: null,
    end_reason: null,
    bundle_id: null,
    steps: [
      {
        id: 'post-summary',
        tool: 'send_message',
        args: { text: '@channel https://evil.example' },
        summary: 's',
        gate: 'gated',
        status: 'awaiting_approval',
        required_approvals: 2,
        approver_groups: ['ops-oncall'],
        distinct_groups: true,
        approvals,
        simulation_step: null,
        token: null,
        decision: null,
      },
    ],
  });

  it('shows approvals that count, unknown when they cannot be counted, and the arguments', () => {
    expect(statusMessage(view(1))).toContain('| `post-summary` | gated | awaiting_approval | 1/2 | — |');
    const unknown = statusMessage(view(null), PUBLIC);
    expect(unknown).toContain('| `post-summary` | gated | awaiting_approval | unknown/2 | — |');
    expect(jsonBlocks(unknown)).toEqual([{ text: '@channel https://evil.example' }]);
  });
});

describe('refusals name each reason once', () => {
  it('a list of problems, or one reason given by several sources, is said once each', () => {
    expect(reasonsOnce('a failed validation; a failed validation; b; a failed validation')).toBe(
      'a failed validation; b',
    );
    expect(reasonsOnce(['x', ' x ', '', 'y'])).toBe('x; y');
    const closed = `channel c takes no jobs: ${Array(4).fill('prod.json failed validation').join('; ')}`;
    const text = noJobMessage(ALICE, closed, 'ERR_CHANNEL_CLOSED');
    expect(text).toBe(
      `<@${ALICE}> no job: channel c takes no jobs: prod.json failed validation (ERR_CHANNEL_CLOSED)`,
    );
    expect(text.match(/failed validation/g)).toHaveLength(1);
  });

  it('a refused decision says its reason once: never the stock reason and the same detail again', () => {
    const text = refusalMessage(
      'ERR_NOT_ELIGIBLE',
      'only the security group may revoke a job',
      ALICE,
      'revoke',
    );
    expect(text).toBe(
      `<@${ALICE}> not counted: only the security group may revoke a job (ERR_NOT_ELIGIBLE).`,
    );
    expect(text.match(/security group/g)).toHaveLength(1);
  });
});

describe('people are named, never shown as raw ids', () => {
  it('the job-ended post names who denied', () => {
    const text = endedMessage(
      { jobId: 42, status: 'denied', reason: `step post-summary denied by ${BRUNO}`, bundleId: 'pb_x' },
      PUBLIC,
    );
    expect(text.split('\n')[0]).toBe(`**job:42 denied** — step \`post-summary\` denied by <@${BRUNO}>`);
  });

  it('a requester’s own id in a refused run is their name', () => {
    const text = noJobMessage(ALICE, `user ${ALICE} is not in a requester group of p`, 'ERR_NOT_A_REQUESTER');
    expect(text).toBe(
      `<@${ALICE}> no job: user <@${ALICE}> is not in a requester group of p (ERR_NOT_A_REQUESTER)`,
    );
  });

  it('someone else’s text cannot make the ended post name anyone', () => {
    const text = endedMessage(
      { jobId: 42, status: 'revoked', reason: `denied by ${BRUNO} <@${BRUNO}>`, bundleId: 'pb_x' },
      null,
    );
    expect([...text.matchAll(MENTION_TOKEN)]).toEqual([]);
  });
});

describe('every message that repeats outside text keeps it inert (property)', () => {
  it('reasons, summaries, results, commands and problems', () => {
    fc.assert(
      fc.property(hostile, (s) => {
        const texts = [
          deniedMessage(1, 'step', ALICE, s),
          revokedMessage(1, ALICE, s),
          endedMessage({ jobId: 1, status: 'revoked', reason: s, bundleId: 'pb_x' }, PUBLIC),
          stepResultMessage(1, 'step', 'succeeded', s),
          refusalMessage('ERR_SOMETHING', s, ALICE),
          // The help that follows is the bot's own text.
          notUnderstoodMessage(s, 'clawbot').split('\n\n')[0]!,
          noJobMessage(ALICE, s, 'ERR_PLAN_INVALID'),
          planMessage(job({ params: { q: s }, steps: [step('st', {}, s)], assertedBy: s }), PUBLIC),
          statusMessage({ ...baseView, end_reason: s }),
        ];
        for (const t of texts)
          expect(liveMarkup(t.replace(/^```json\n[\s\S]*?\n```$/gmu, ''), [ALICE])).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });
});

const baseView: JobView = {
  id: 'job:1',
  job_id: 1,
  status: 'revoked',
  origin: 'mattermost',
  channel_id: 'c',
  root_post_id: 'r',
  requester_id: ALICE,
  executor: 'agent:x',
  runbook: 'r',
  policy: { name: 'p', policy_hash_b64u: 'h' },
  plan_hash_b64u: 'p',
  created_at: '2026-11-21T10:00:00.000Z',
  expires_at: '2026-11-21T11:00:00.000Z',
  ended_at: null,
  end_reason: null,
  bundle_id: null,
  steps: [],
};
