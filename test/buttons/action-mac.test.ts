import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ActionClaims,
  signActionContext,
  signDialogState,
  verifyActionContext,
  verifyDialogState,
} from '../../src/crypto/action-mac.js';
import { loadActionSecret } from '../../src/crypto/action-secret.js';
import type { Wpc } from '../../src/policy/types.js';
import { validatePolicy } from '../../src/policy/validate-policy.js';

const secret = new Uint8Array(32).fill(3);
const claims: ActionClaims = {
  job: 12,
  step: 'post-summary',
  planHash: 'p'.repeat(43),
  policyHash: 'q'.repeat(43),
  postId: 'a'.repeat(26),
  action: 'approve',
};

describe('button contexts', () => {
  it('verify with their key and bind every field', () => {
    const context = signActionContext(secret, claims);
    expect(verifyActionContext(secret, context)).toEqual(claims);
    // Mattermost's JSON round trip keeps them as they are.
    expect(verifyActionContext(secret, JSON.parse(JSON.stringify(context)))).toEqual(claims);
    expect(verifyActionContext(new Uint8Array(32).fill(4), context)).toBeNull();
    const changes: Record<string, string>[] = [
      { job: '13' },
      { step: 'search-kb' },
      { plan_hash: 'r'.repeat(43) },
      { policy_hash: 'r'.repeat(43) },
      { post_id: 'b'.repeat(26) },
      { action: 'deny' },
      { mac: 'A'.repeat(43) },
    ];
    for (const change of changes)
      expect(verifyActionContext(secret, { ...context, ...change }), JSON.stringify(change)).toBeNull();
  });

  it('refuse anything not shaped like one', () => {
    const context = signActionContext(secret, claims);
    const { mac: _, ...unsigned } = context;
    for (const bad of [
      null,
      'x',
      [],
      {},
      unsigned,
      { ...context, job: 12 },
      { ...context, mac: `${context.mac}=` },
    ])
      expect(verifyActionContext(secret, bad)).toBeNull();
  });

  it('and dialog states never stand in for each other', () => {
    const state = signDialogState(secret, {
      ...claims,
      action: 'deny',
      userId: 'u'.repeat(26),
      expiresAt: 1_900_000_000_000,
    });
    expect(verifyDialogState(secret, state)).toMatchObject({ action: 'deny', userId: 'u'.repeat(26) });
    expect(verifyActionContext(secret, JSON.parse(state))).toBeNull();
    expect(verifyDialogState(secret, JSON.stringify(signActionContext(secret, claims)))).toBeNull();
    expect(
      verifyDialogState(secret, JSON.stringify({ ...JSON.parse(state), user_id: 'v'.repeat(26) })),
    ).toBeNull();
    expect(verifyDialogState(secret, `${state}${' '.repeat(2_000)}`)).toBeNull();
  });
});

describe('the action secret file', () => {
  let dir: string;
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('is created by serve with mode 0600, read back the same, and refused when others can read it', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'action-secret-'));
    const file = path.join(dir, 'keys', 'action-secret');
    await expect(loadActionSecret(file)).rejects.toMatchObject({ code: 'ERR_KEY_UNREADABLE' });
    const created = await loadActionSecret(file, { create: true });
    expect(created).toHaveLength(32);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect(await loadActionSecret(file, { create: true })).toEqual(created);
    await fs.chmod(file, 0o644);
    await expect(loadActionSecret(file)).rejects.toMatchObject({ code: 'ERR_KEY_PERMISSIONS' });
    await fs.chmod(file, 0o600);
    await fs.writeFile(file, 'short\n');
    await expect(loadActionSecret(file)).rejects.toMatchObject({ code: 'ERR_KEY_INVALID' });
  });
});

describe('approval_methods in a policy', () => {
  const base = JSON.parse(
    readFileSync(new URL('../../policies/mattermost-agent-prod.json', import.meta.url), 'utf8'),
  ) as Wpc;
  const withMethods = (methods: unknown) => {
    const p = structuredClone(base) as unknown as { execution: Record<string, unknown> };
    p.execution.approval_methods = methods;
    return validatePolicy(p);
  };

  it('takes the phrase with buttons, and the phrase alone', () => {
    expect(withMethods(['phrase', 'button']).ok).toBe(true);
    expect(withMethods(['phrase']).ok).toBe(true);
  });

  it('refuses buttons without the phrase, unknown methods and repeats', () => {
    for (const methods of [['button'], [], ['phrase', 'emoji'], ['phrase', 'phrase'], 'button']) {
      const r = withMethods(methods);
      expect(r.ok, JSON.stringify(methods)).toBe(false);
      if (!r.ok)
        expect(r.problems.map((p) => `${p.path} ${p.rule}`)).toEqual([
          '$.execution.approval_methods schema:enum',
        ]);
    }
  });
});
