import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import { sealEnvelope } from '../../src/crypto/envelope.js';
import { approvalRuleFor } from '../../src/policy/approval-rule.js';
import type { GroupsFile, Wpc } from '../../src/policy/types.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import type { SigningKey } from '../../src/tokens/signing-key.js';
import {
  createWorld,
  eventually,
  jobIdIn,
  ready,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { answerTo, createSecurityChannel, decisionsOn, jobRow } from '../helpers/bot-thread.js';
import { dialectName } from '../helpers/db.js';
import { REPO_POLICIES_DIR } from '../helpers/fs.js';
import { silentLogger } from '../helpers/log.js';
import { newKey } from '../helpers/state.js';

const readJson = <T>(name: string): T =>
  JSON.parse(readFileSync(path.join(REPO_POLICIES_DIR, name), 'utf8')) as T;
const groups = readJson<GroupsFile>('groups.json');
const shipped = readdirSync(REPO_POLICIES_DIR)
  .filter((n) => n.endsWith('.json') && n !== 'groups.json' && !n.endsWith('.schema.json'))
  .map((file) => readJson<Wpc>(file))
  .filter((p) => Object.keys(p.runbooks ?? {}).length > 0);

/**
 * What a requester types for each shipped runbook. Every runbook of every shipped policy must
 * be here (a test checks it), so a new policy cannot ship without being run end to end.
 */
const REQUESTS: Record<string, Record<string, Record<string, string>>> = {
  'mattermost-agent-prod': {
    'service-context': {
      service: 'payments-api',
      query: 'latency spikes',
      notify_channel: 'payments-oncall',
    },
  },
  'change-mgmt-prod-approval': {
    'change-review': { change_id: 'CHG0031337' },
    'prod-change': { change_id: 'CHG0031337', review_bundle_id: 'pb_c2hpcHBlZC1wb2xpY3ktcmV2aWV3' },
  },
  'customer-support-refund-assistant': {
    'refund-request': { ticket_id: 'SUP-48213', amount_cents: '1500', reason: 'charged twice for one order' },
  },
  'invoice-triage': {
    'triage-invoice': { invoice_id: 'INV-2024-00123', vendor_id: 'V-10442' },
  },
  'mcp-enterprise-agent-minimal': {
    'customer-case-update': {
      customer_email: 'pat@example.com',
      case_id: 'CASE-88121',
      ticket_id: 'TCK-5521',
      comment: 'Refund issued; closing the case',
    },
  },
};

const CASES = shipped.flatMap((policy) =>
  Object.keys(policy.runbooks!).map((runbook) => ({ name: policy.policy_name, runbook, policy })),
);

/** Mattermost users named by id in groups.json, with a username from their note ("alice.nguyen, …" → alice). */
const NAMED_PEOPLE = new Map<string, string>();
for (const group of Object.values(groups.groups)) {
  for (const m of group.members) {
    if ('user_id' in m && m.user_id) NAMED_PEOPLE.set(m.user_id, (m.note ?? m.user_id).split(/[.,\s]/)[0]!);
  }
}
const namedMembers = (group: string): string[] =>
  (groups.groups[group]?.members ?? []).flatMap((m) => ('user_id' in m && m.user_id ? [m.user_id] : []));

/** The first person named in one of the policy's requester groups. */
function requesterOf(policy: Wpc): string {
  const id = policy.channel_context.requester_groups.flatMap(namedMembers)[0];
  if (!id) throw new Error(`${policy.policy_name}: no requester is named in groups.json`);
  return id;
}

/**
 * People who together satisfy a step's effective rule: never the requester, one per required
 * group when the rule wants distinct groups.
 */
function approversFor(policy: Wpc, tool: string, requester: string): string[] {
  const rule = approvalRuleFor(policy, tool);
  const chosen: string[] = [];
  const candidates = (group: string) =>
    namedMembers(group).filter((id) => id !== requester && !chosen.includes(id));
  if (rule.distinct_groups) {
    for (const group of rule.allowed_approver_groups.slice(0, rule.required_approvals)) {
      const id = candidates(group)[0];
      if (id) chosen.push(id);
    }
  } else {
    for (const group of rule.allowed_approver_groups) {
      while (chosen.length < rule.required_approvals && candidates(group).length > 0)
        chosen.push(candidates(group)[0]!);
    }
  }
  if (chosen.length !== rule.required_approvals) {
    throw new Error(`${policy.policy_name}: groups.json names too few people to approve ${tool}`);
  }
  return chosen;
}

/** `k=v` words; values with spaces are quoted, as a person would type them. */
function runCommand(runbook: string, params: Record<string, string>): string {
  const words = Object.entries(params).map(([k, v]) => (/\s/.test(v) ? `${k}="${v}"` : `${k}=${v}`));
  return ['@clawbot run', runbook, ...words].join(' ');
}

/** A gateway receipt (Claw Bureau shape) bound to the event a claim returned, as clawproxy would sign it. */
function gatewayReceipt(key: SigningKey, binding: { run_id: string; event_hash_b64u: string }, step: string) {
  const sha = (t: string) => createHash('sha256').update(t, 'utf8').digest('base64url');
  const payload = {
    receipt_version: '1',
    receipt_id: `rcpt_${binding.run_id.replace(':', '_')}_${step}`,
    gateway_id: 'gw_shipped_policies',
    provider: 'openrouter',
    model: 'openrouter/test-model',
    request_hash_b64u: sha(`request ${step}`),
    response_hash_b64u: sha(`response ${step}`),
    tokens_input: 10,
    tokens_output: 20,
    latency_ms: 50,
    timestamp: new Date().toISOString(),
    binding: { ...binding, nonce: `nonce_${step}` },
  };
  return sealEnvelope({
    type: 'gateway_receipt',
    payload,
    payloadHashB64u: bundlePayloadHash(payload),
    key,
    issuedAt: new Date(),
  });
}

let w: World;
let b: RunningBot | null = null;
let app: FastifyInstance | null = null;

beforeEach(async () => {
  w = await createWorld();
  createSecurityChannel(w);
});
afterEach(async () => {
  await app?.close();
  app = null;
  await b?.stop();
  b = null;
  await w.close();
});

/** The policy's team and channel in the sandbox, with the bot and everyone named in groups.json in it. */
function seedPolicy(policy: Wpc): { team: string; channel: string } {
  const team = policy.channel_context.allowed_team_ids[0]!;
  const channel = policy.channel_context.allowed_channel_ids[0]!;
  if (team !== w.team) w.sandbox.createTeam({ id: team, name: `team-${policy.policy_name}` });
  if (channel !== w.channel) {
    w.sandbox.createChannel({ id: channel, team_id: team, name: policy.policy_name, type: 'O' });
  }
  const known = new Set(Object.values(w.ids));
  for (const [id, username] of NAMED_PEOPLE) {
    if (!known.has(id)) w.sandbox.createUser({ id, username });
    known.add(id);
  }
  w.sandbox.addChannelMember(channel, w.botUserId);
  for (const id of known) w.sandbox.addChannelMember(channel, id);
  return { team, channel };
}

const say = (userId: string, channel: string, message: string, rootId?: string): ChatPost =>
  w.sandbox.createPost(userId, { channel_id: channel, message, ...(rootId ? { root_id: rootId } : {}) });

async function stepsOf(jobId: number) {
  return w.d.db.selectFrom('job_steps').selectAll().where('job_id', '=', jobId).orderBy('position').execute();
}

describe(`every shipped policy runs end to end in the sandbox (${dialectName})`, () => {
  it('the requests below cover every runbook of every shipped policy', () => {
    expect(shipped.map((p) => p.policy_name).sort()).toEqual(Object.keys(REQUESTS).sort());
    for (const p of shipped)
      expect(Object.keys(p.runbooks!).sort()).toEqual(Object.keys(REQUESTS[p.policy_name]!).sort());
  });

  it.each(CASES)(
    '$name: `run $runbook` in its channel → plan → every gated step approved → a token for every step → completed',
    async ({ name, runbook, policy }) => {
      const { channel } = seedPolicy(policy);
      const executor = policy.runbooks![runbook]!.executor;
      const agent = await createAgent(w.d.db, { id: executor, at: new Date() });
      const gateway = newKey();
      b = await startBot(w);
      // The gateway that signs receipts is one the deployment trusts (GATEWAY_SIGNER_DIDS).
      b.engine.gatewaySigners = new Set([gateway.did]);
      app = buildApp({
        db: w.d.db,
        keyRing: b.engine.keyRing,
        policies: b.engine.policies,
        log: silentLogger(),
        engine: b.engine,
      });
      const headers = { authorization: `Bearer ${agent.key}` };
      await ready(b);

      // The requester asks in the channel the policy claims; the bot answers with the plan.
      const requester = requesterOf(policy);
      const root = say(requester, channel, runCommand(runbook, REQUESTS[name]![runbook]!));
      const plan = await answerTo(w, root);
      expect(plan.message).toContain('Plan for job:');
      const jobId = jobIdIn(plan);
      const job = await jobRow(w, jobId);
      expect(job).toMatchObject({
        status: 'open',
        policy_name: name,
        runbook,
        channel_id: channel,
        executor,
      });
      const steps = await stepsOf(jobId);
      expect(steps.map((s) => s.step_id)).toEqual(policy.runbooks![runbook]!.steps.map((s) => s.id));
      for (const s of steps) expect(plan.message).toContain(s.step_id);

      // Eligible people approve every gated step in the thread.
      for (const s of steps.filter((x) => x.gate === 'gated')) {
        for (const approver of approversFor(policy, s.tool, requester)) {
          const post = say(approver, channel, `APPROVE job:${jobId} step:${s.step_id}`, root.id);
          const [decision] = await eventually(async () => {
            const rows = await decisionsOn(w, post.id);
            return rows.length > 0 ? rows : null;
          }, `the decision on ${approver}'s approval of ${s.step_id}`);
          expect(decision).toMatchObject({ outcome: 'accepted', step_id: s.step_id });
        }
      }

      // The executing agent claims each step's token over the API and reports it done, with
      // the gateway's receipt; a simulation's success unlocks the steps that wait on it.
      for (const s of steps) {
        const minted = await eventually(
          () =>
            w.d.db
              .selectFrom('tokens')
              .selectAll()
              .where('job_id', '=', jobId)
              .where('step_id', '=', s.step_id)
              .executeTakeFirst(),
          `a token for step ${s.step_id}`,
        );
        expect(minted).toMatchObject({ sub: executor, revoked_at: null });
        const claim = await app.inject({
          method: 'POST',
          url: `/v1/jobs/${jobId}/steps/${s.step_id}/token`,
          headers,
        });
        expect(claim.statusCode).toBe(200);
        const claimed = claim.json() as { jti: string; run_id: string; event_hash_b64u: string };
        expect(claimed.jti).toBe(minted.jti);
        const reported = await app.inject({
          method: 'POST',
          url: `/v1/jobs/${jobId}/steps/${s.step_id}/result`,
          headers,
          payload: {
            status: 'succeeded',
            summary: `${s.step_id} done`,
            receipts: [gatewayReceipt(gateway, claimed, s.step_id)],
          },
        });
        expect(reported.statusCode).toBe(200);
        expect(reported.json()).toMatchObject({ receipts: [{ verified: true }] });
      }

      const tokens = await w.d.db
        .selectFrom('tokens')
        .select('step_id')
        .where('job_id', '=', jobId)
        .execute();
      expect(tokens.map((t) => t.step_id).sort()).toEqual(steps.map((s) => s.step_id).sort());
      const ended = await jobRow(w, jobId);
      expect(ended).toMatchObject({ status: 'completed', bundle_id: expect.stringMatching(/^pb_/) });
    },
  );
});
