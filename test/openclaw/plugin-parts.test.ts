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
import { argText, stepIdFor, toolCallStep } from '../../integrations/openclaw/src/tool-step.js';
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
    expect(toolCallStep('t', { 'a\nb': 1 })).toEqual({
      ok: false,
      reason: 't has an input name that cannot be shown for approval',
    });
    expect(toolCallStep('bad tool', {})).toEqual({
      ok: false,
      reason: 'the tool name is not one a policy can name',
    });
    const r = toolCallStep('t', {}, { agentId: '@channel **x**' });
    expect(r.ok && r.step.summary).toBe(`OpenClaw tool call t; input JCS SHA-256 ${jcsSha256B64u({})}`);
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
    });
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
