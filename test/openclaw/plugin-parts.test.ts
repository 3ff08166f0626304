import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { requesterOf } from '../../integrations/openclaw/src/approval-gate.js';
import { parseConfig } from '../../integrations/openclaw/src/config.js';
import { canonicalJson, jcsSha256B64u } from '../../integrations/openclaw/src/jcs.js';
import {
  classifyTool,
  matchesPattern,
  type PinnedPolicy,
  PolicyError,
  pinnedPolicyFrom,
} from '../../integrations/openclaw/src/policy.js';
import { argsCarry, argText, stepIdFor, toolCallStep } from '../../integrations/openclaw/src/tool-step.js';
import { CallBindings } from '../../integrations/openclaw/src/bindings.js';
import { hookTimeouts, operatorHooksOf } from '../../integrations/openclaw/src/hook-timeout.js';
import { matchesPattern as serverMatches } from '../../src/policy/tool-pattern.js';
import { PLUGIN_DIR } from './openclaw-gateway.js';

const CHANNEL = '7sczj5rye83784zqootng6sb48';
const HASH = 'a3MIY61y3pyimg9tIUepz4Cu34cb6hiO19O-SUWcm_0';
const good = { serverUrl: 'https://claw.example.com/', channelId: CHANNEL, policyHash: HASH };
const env = { CLAW_APPROVALS_AGENT_KEY: 'key_0123456789abcdef' };

describe('plugin configuration', () => {
  it('accepts a complete configuration, with the key from the environment by default', () => {
    expect(parseConfig(good, { env })).toEqual({
      ok: true,
      config: {
        serverUrl: 'https://claw.example.com',
        agentKey: 'key_0123456789abcdef',
        channelId: CHANNEL,
        policyHash: HASH,
        approvalTimeoutMs: 600_000,
        resultTimeoutMs: 900_000,
      },
    });
  });

  it('reads the key from a file or a named variable, never both', () => {
    const readFile = (p: string) => (p === '/run/secrets/claw' ? 'key_from_file_0123\n' : '');
    expect(parseConfig({ ...good, agentKeyFile: '/run/secrets/claw' }, { env: {}, readFile })).toMatchObject({
      ok: true,
      config: { agentKey: 'key_from_file_0123' },
    });
    expect(
      parseConfig({ ...good, agentKeyEnv: 'MY_KEY' }, { env: { MY_KEY: 'k_named_0123' } }),
    ).toMatchObject({
      ok: true,
      config: { agentKey: 'k_named_0123' },
    });
    expect(parseConfig({ ...good, agentKeyEnv: 'MY_KEY', agentKeyFile: '/x' }, { env })).toEqual({
      ok: false,
      problems: ['set agentKeyFile or agentKeyEnv, not both'],
    });
  });

  it('names every problem, never a value', () => {
    const r = parseConfig(
      {
        serverUrl: 'ftp://user:secret-password@host/',
        channelId: 'general',
        policyHash: 'short',
        teamId: 7,
        requesterId: '@grace',
        approvalTimeoutSeconds: 0,
        resultTimeoutSeconds: 1.5,
        agentKeyEnv: 'NOT SET',
        shadowMode: true,
      },
      { env },
    );
    expect(r).toEqual({
      ok: false,
      problems: [
        'unknown setting shadowMode',
        'serverUrl must be an http(s) URL without credentials, query or fragment',
        'agentKeyEnv must name an environment variable',
        'channelId must be a Mattermost channel id (26 characters a-z, 0-9)',
        'teamId must be a Mattermost team id (26 characters a-z, 0-9)',
        'policyHash must be a policy_hash_b64u (43 base64url characters)',
        'requesterId must be a Mattermost user id (26 characters a-z, 0-9)',
        'approvalTimeoutSeconds must be a whole number of seconds from 1 to 3600',
        'resultTimeoutSeconds must be a whole number of seconds from 1 to 86400',
      ],
    });
    expect(JSON.stringify(r)).not.toContain('secret-password');
  });

  it('refuses a missing configuration, a missing key and a key that is not one', () => {
    expect(parseConfig(undefined, { env })).toMatchObject({
      ok: false,
      problems: expect.arrayContaining(['the plugin has no configuration']),
    });
    expect(parseConfig(good, { env: {} })).toEqual({
      ok: false,
      problems: ['the agent key is missing: set CLAW_APPROVALS_AGENT_KEY or agentKeyFile'],
    });
    expect(parseConfig(good, { env: { CLAW_APPROVALS_AGENT_KEY: 'two words' } })).toEqual({
      ok: false,
      problems: ['the agent key must be 1–512 printable ASCII characters without spaces'],
    });
    expect(
      parseConfig(
        { ...good, agentKeyFile: '/missing' },
        {
          env,
          readFile: () => {
            throw new Error('ENOENT');
          },
        },
      ),
    ).toEqual({ ok: false, problems: ['agentKeyFile cannot be read'] });
  });
});

describe('JCS', () => {
  it('agrees with the canonicalize package the server hashes with, for any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(canonicalJson(value)).toBe(canonicalize(value));
      }),
      { numRuns: 500 },
    );
  });

  it('refuses what JSON cannot carry instead of changing it', () => {
    for (const bad of [Number.NaN, Infinity, 10n, () => 1, new Date(0), [undefined], Symbol('x')]) {
      expect(() => canonicalJson({ v: bad })).toThrow(TypeError);
    }
    expect(canonicalJson({ b: undefined, a: 1 })).toBe('{"a":1}');
    expect(jcsSha256B64u({ a: 1 })).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe('tool calls as plan steps', () => {
  it('names the step after the tool, as far as a step id allows', () => {
    expect(stepIdFor('send_message')).toBe('send_message');
    expect(stepIdFor('mcp:crm/Search_Customer')).toBe('mcp-crm-search_customer');
    expect(stepIdFor('_private')).toBe('call-_private');
    expect(stepIdFor('x'.repeat(128))).toBe('x'.repeat(64));
  });

  it('keeps scalars as they are and writes the rest as JSON text people can read and nothing can hide in', () => {
    const params = {
      a: 'plain',
      n: 3,
      f: 1.5,
      b: false,
      nested: { z: [1, null] },
      text: 'one\ntwo',
      rtl: 'x\u202ey',
      gone: undefined,
    };
    const r = toolCallStep('send_message', params, { agentId: 'main' });
    expect(r).toEqual({
      ok: true,
      paramsHash: jcsSha256B64u(params),
      step: {
        id: 'send_message',
        tool: 'send_message',
        args: {
          a: 'plain',
          n: 3,
          f: '1.5',
          b: false,
          nested: '{"z":[1,null]}',
          text: '"one\\ntwo"',
          rtl: '"x\\u202ey"',
        },
        summary: `OpenClaw tool call send_message by agent main; input JCS SHA-256 ${jcsSha256B64u(params)}`,
      },
    });
    // Escaped text is still JSON for the same value.
    expect(JSON.parse(argText('x\u202ey\u0000'))).toBe('x\u202ey\u0000');
  });

  it('refuses input that cannot be shown whole: a hostile field name, an agent name with markup is left out', () => {
    const notPlain = {
      ok: false,
      reason:
        't has an input name that is not a plain identifier (letters, digits, _ and -), so it cannot be shown for approval',
    };
    for (const name of ['a\nb', 'a.b', 'a b', '1st', '', 'x'.repeat(65), 'ä'])
      expect(toolCallStep('t', { [name]: 1 }), name).toEqual(notPlain);
    expect(toolCallStep('bad tool', {})).toEqual({
      ok: false,
      reason: 'the tool name is not one a policy can name',
    });
    const r = toolCallStep('t', {}, { agentId: '@channel **x**' });
    expect(r.ok && r.step.summary).toBe(`OpenClaw tool call t; input JCS SHA-256 ${jcsSha256B64u({})}`);
  });
});

describe('field names an object treats specially', () => {
  it('refuses a __proto__ field, which an assignment would drop from the step the tool still gets', () => {
    // As a JSON parser hands it over: an own field named __proto__.
    const params = JSON.parse('{"channel":"ops","__proto__":{"admin":true}}') as Record<string, unknown>;
    expect(Object.keys(params)).toEqual(['channel', '__proto__']);
    expect(toolCallStep('send_message', params)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('not a plain identifier') as unknown,
    });
    const scalar = JSON.parse('{"__proto__":"x"}') as Record<string, unknown>;
    expect(toolCallStep('send_message', scalar).ok).toBe(false);
  });

  it('shows constructor and prototype fields whole, as own fields of the args', () => {
    const params = JSON.parse('{"constructor":"c","prototype":{"x":1},"hasOwnProperty":2}') as Record<
      string,
      unknown
    >;
    const r = toolCallStep('send_message', params);
    if (!r.ok) throw new Error(r.reason);
    expect(Object.keys(r.step.args)).toEqual(['constructor', 'prototype', 'hasOwnProperty']);
    expect(Object.hasOwn(r.step.args, 'constructor')).toBe(true);
    expect(r.step.args.constructor).toBe('c');
    expect(r.step.args.prototype).toBe('{"x":1}');
    expect(JSON.parse(JSON.stringify(r.step.args))).toEqual({
      constructor: 'c',
      prototype: '{"x":1}',
      hasOwnProperty: 2,
    });
    expect(argsCarry(r.step.args, params)).toBe(true);
  });

  it('reads the args back against the input: a field lost, added or changed is caught', () => {
    const params = { a: 'plain', n: 3, f: 1.5, nested: { z: [1] }, text: 'one\ntwo', gone: undefined };
    const r = toolCallStep('t', params);
    if (!r.ok) throw new Error(r.reason);
    expect(argsCarry(r.step.args, params)).toBe(true);
    const { a: _a, ...lost } = r.step.args;
    expect(argsCarry(lost, params)).toBe(false);
    expect(argsCarry({ ...r.step.args, extra: 1 }, params)).toBe(false);
    expect(argsCarry({ ...r.step.args, f: '1.25' }, params)).toBe(false);
    expect(argsCarry({ ...r.step.args, nested: '{"z":[2]}' }, params)).toBe(false);
    expect(argsCarry({ ...r.step.args, n: 4 }, params)).toBe(false);
    expect(argsCarry({ ...r.step.args, text: 'one two' }, params)).toBe(false);
    // A field present only through the prototype is not carried.
    const inherited = Object.create({ a: 'plain' }) as Record<string, unknown>;
    Object.assign(inherited, lost);
    expect(argsCarry(inherited, params)).toBe(false);
    // `undefined` means absent, as in JSON.
    expect(argsCarry({ a: 'plain' }, { a: 'plain', b: undefined })).toBe(true);
  });
});

describe('call bindings', () => {
  const b = (job_id: number) => ({ job_id, step: 's', run_id: `job:${job_id}`, event_hash_b64u: 'h' });

  it('tells two runs that both name a call call_1 apart, and never guesses between them', () => {
    const reg = new CallBindings();
    reg.set('call_1', 'run-a', b(1));
    expect(reg.get('call_1')).toEqual(b(1));
    reg.set('call_1', 'run-b', b(2));
    expect(reg.get('call_1', 'run-a')).toEqual(b(1));
    expect(reg.get('call_1', 'run-b')).toEqual(b(2));
    expect(reg.get('call_1')).toBeUndefined();
    expect(reg.get('call_1', 'run-c')).toBeUndefined();
    // Dropping one call leaves the other, and the call id is unique again.
    reg.delete('call_1', 'run-a', 1);
    expect(reg.get('call_1')).toEqual(b(2));
    // Only the job that holds a binding drops it.
    reg.delete('call_1', 'run-b', 99);
    expect(reg.get('call_1', 'run-b')).toEqual(b(2));
    expect(reg.size).toBe(1);
  });

  it('keeps calls without a run apart from calls of a run', () => {
    const reg = new CallBindings();
    reg.set('call_1', undefined, b(1));
    expect(reg.get('call_1', 'run-a')).toBeUndefined();
    expect(reg.get('call_1')).toEqual(b(1));
  });
});

describe("the gate's deadline inside OpenClaw's hook timeout", () => {
  it('asks for the wait + 60 s and stops 30 s before OpenClaw would', () => {
    expect(hookTimeouts(600_000, undefined)).toEqual({
      requestedMs: 660_000,
      hookTimeoutMs: 660_000,
      gateDeadlineMs: 630_000,
    });
  });

  it("follows an operator's hook timeout, as OpenClaw's loader resolves it", () => {
    const cfg = (hooks: unknown) => ({ plugins: { entries: { 'claw-approvals': { hooks } } } });
    const at = (hooks: unknown) => hookTimeouts(600_000, operatorHooksOf(cfg(hooks), 'claw-approvals'));
    expect(at({ timeouts: { before_tool_call: 300_000 } })).toMatchObject({
      hookTimeoutMs: 300_000,
      gateDeadlineMs: 270_000,
    });
    expect(at({ timeoutMs: 120_000 })).toMatchObject({ hookTimeoutMs: 120_000, gateDeadlineMs: 90_000 });
    expect(at({ timeouts: { before_tool_call: 200_000 }, timeoutMs: 120_000 })).toMatchObject({
      gateDeadlineMs: 170_000,
    });
    // A longer one does not stretch the gate past the wait + its margin.
    expect(at({ timeouts: { before_tool_call: 3_600_000 } })).toMatchObject({ gateDeadlineMs: 630_000 });
    // One that leaves no time: the gate has none (and blocks every gated call).
    expect(at({ timeoutMs: 20_000 }).gateDeadlineMs).toBeLessThanOrEqual(0);
    expect(at({ timeoutMs: 'soon' })).toMatchObject({ hookTimeoutMs: 660_000 });
    expect(
      operatorHooksOf({ plugins: { entries: { other: { hooks: { timeoutMs: 1 } } } } }, 'claw-approvals'),
    ).toBe(undefined);
    expect(operatorHooksOf(undefined, 'claw-approvals')).toBeUndefined();
  });
});

describe('the pinned policy', () => {
  const policy: PinnedPolicy = {
    hash: HASH,
    name: 'p',
    allow: ['read', 'send_*', 'mcp:crm/*'],
    deny: ['send_money'],
    gated: ['send_*'],
    channels: [CHANNEL],
    audience: 'clawproxy',
    simulateFirst: null,
  };

  it('classifies like the server: allowlist only, deny wins, gated where the policy asks', () => {
    expect(classifyTool(policy, 'read')).toEqual({ gate: 'auto' });
    expect(classifyTool(policy, 'send_message')).toEqual({ gate: 'gated' });
    expect(classifyTool(policy, 'send_money')).toEqual({
      gate: 'denied',
      reason: 'send_money is denied by policy p',
    });
    expect(classifyTool(policy, 'exec')).toEqual({
      gate: 'denied',
      reason: 'exec is not on the allowlist of policy p',
    });
    expect(classifyTool(policy, 'mcp:crm/get')).toEqual({ gate: 'auto' });
  });

  it('blocks a tool simulate_first requires a simulation before, gated or not: one call is a one-step plan', () => {
    const simulated = {
      ...policy,
      simulateFirst: { simulationTool: 'dry_run', requiredBefore: ['read', 'send_*'] },
    };
    for (const tool of ['read', 'send_message']) {
      expect(classifyTool(simulated, tool)).toEqual({
        gate: 'denied',
        reason: `policy p lets ${tool} run only after a dry_run step in the same plan (simulate_first); a single tool call cannot have one`,
      });
    }
    // Deny and the allowlist still come first; tools it does not name are classified as before.
    expect(classifyTool(simulated, 'send_money')).toMatchObject({
      reason: 'send_money is denied by policy p',
    });
    expect(classifyTool(simulated, 'mcp:crm/get')).toEqual({ gate: 'auto' });
  });

  it('matches tool patterns exactly as the server does', () => {
    const name = fc.stringMatching(/^[A-Za-z0-9_.:/*-]{0,12}$/);
    fc.assert(
      fc.property(name, name, (pattern, tool) => {
        expect(matchesPattern(pattern, tool)).toBe(serverMatches(pattern, tool));
      }),
      { numRuns: 1000 },
    );
  });

  function answer(payload: Record<string, unknown>, hash = jcsSha256B64u(payload)) {
    return { ok: true, policy_hash_b64u: hash, envelope: { payload, payload_hash_b64u: hash } };
  }
  const payload = {
    policy_version: '1',
    metadata: {
      claw_approvals: {
        policy_name: 'p',
        channel_context: { allowed_channel_ids: [CHANNEL] },
        tools: { allow: ['read'], deny: ['exec'] },
        execution: { require_human_approval_for: ['send_message'] },
        token_requirements: { audience: 'clawproxy' },
      },
    },
  };

  it('reads the approval policy out of a WPC that hashes to the pin', () => {
    const hash = jcsSha256B64u(payload);
    expect(pinnedPolicyFrom(answer(payload), hash)).toEqual({
      hash,
      name: 'p',
      allow: ['read'],
      deny: ['exec'],
      gated: ['send_message'],
      channels: [CHANNEL],
      audience: 'clawproxy',
      simulateFirst: null,
    });
    const simulated = structuredClone(payload) as typeof payload & {
      metadata: { claw_approvals: { execution: Record<string, unknown> } };
    };
    simulated.metadata.claw_approvals.execution.simulate_first = {
      simulation_tool: 'dry_run',
      required_before: ['send_*'],
    };
    expect(pinnedPolicyFrom(answer(simulated), jcsSha256B64u(simulated)).simulateFirst).toEqual({
      simulationTool: 'dry_run',
      requiredBefore: ['send_*'],
    });
    simulated.metadata.claw_approvals.execution.simulate_first = { simulation_tool: 'dry_run' };
    expect(() => pinnedPolicyFrom(answer(simulated), jcsSha256B64u(simulated))).toThrow(
      'execution.simulate_first.required_before is not a list of names',
    );
  });

  it('refuses another policy, a changed payload, and a payload without an approval policy', () => {
    const hash = jcsSha256B64u(payload);
    const other = { ...payload, policy_version: '2' };
    expect(() => pinnedPolicyFrom(answer(other), hash)).toThrow(PolicyError);
    // The answer claims the pinned hash but carries another payload.
    expect(() => pinnedPolicyFrom(answer(other, hash), hash)).toThrow(`does not hash to ${hash}`);
    const bare = { policy_version: '1' };
    expect(() => pinnedPolicyFrom(answer(bare), jcsSha256B64u(bare))).toThrow(
      'the pinned policy has no metadata',
    );
    const noAudience = structuredClone(payload);
    noAudience.metadata.claw_approvals.token_requirements = { audience: '' };
    expect(() => pinnedPolicyFrom(answer(noAudience), jcsSha256B64u(noAudience))).toThrow(
      'names no token audience',
    );
    expect(() => pinnedPolicyFrom('<html>', hash)).toThrow('the pinned policy has no answer');
  });
});

describe('who a job is for', () => {
  const config = { requesterId: 'dse6eipg5ijztcxx8bhb384g5d' } as Parameters<typeof requesterOf>[1];
  it('takes a Mattermost sender, else the configured requester', () => {
    expect(
      requesterOf({ requester: { channel: 'mattermost', senderId: 'f9g6ejxi8rtawyzhfgrt6tynuc' } }, config),
    ).toBe('f9g6ejxi8rtawyzhfgrt6tynuc');
    expect(requesterOf({ requester: { channel: 'mattermost', senderId: 'not-an-id' } }, config)).toBe(
      config.requesterId,
    );
    expect(
      requesterOf({ requester: { channel: 'slack', senderId: 'f9g6ejxi8rtawyzhfgrt6tynuc' } }, config),
    ).toBe(config.requesterId);
    expect(requesterOf({}, { ...config, requesterId: undefined })).toBeUndefined();
  });
});

describe('staging the plugin', () => {
  const stage = (dest: string) =>
    spawnSync(process.execPath, [path.join(PLUGIN_DIR, 'scripts/stage-plugin.mjs'), dest], {
      encoding: 'utf8',
    });

  it('refuses a directory named openclaw and one that holds something else, changing nothing', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'claw-stage-'));
    try {
      const named = stage(path.join(dir, 'openclaw'));
      expect([named.status, named.stderr]).toEqual([
        1,
        'stage-plugin: name the plugin directory anything but "openclaw"\n',
      ]);
      await fs.mkdir(path.join(dir, 'data'));
      await fs.writeFile(path.join(dir, 'data', 'keep.txt'), 'precious');
      const taken = stage(path.join(dir, 'data'));
      expect(taken.status).toBe(1);
      expect(taken.stderr).toContain('exists and is not a staged plugin: refusing to replace it');
      expect(await fs.readFile(path.join(dir, 'data', 'keep.txt'), 'utf8')).toBe('precious');
      expect(stage('').stderr).toBe(
        'stage-plugin: usage: node integrations/openclaw/scripts/stage-plugin.mjs <directory>\n',
      );
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
