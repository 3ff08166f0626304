import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type ResolveInput, resolveChannels } from '../../src/policy/resolve-channels.js';
import type { Wpc } from '../../src/policy/types.js';

const policiesDir = new URL('../../policies/', import.meta.url);
const basePolicy = JSON.parse(
  readFileSync(new URL('change-mgmt-prod-approval.json', policiesDir), 'utf8'),
) as Wpc;

function policy(name: string, channels: string[]): Wpc {
  const p = structuredClone(basePolicy);
  p.policy_name = name;
  p.channel_context.allowed_channel_ids = channels;
  return p;
}

function input(parts: Partial<ResolveInput>): ResolveInput {
  return { files: [], failedFiles: [], pins: new Map(), pinned: new Map(), ...parts };
}

const file = (name: string, channels: string[], fileName = `${name}.json`, hash = `hash-${fileName}`) => ({
  file: fileName,
  name,
  hash,
  policy: policy(name, channels),
});

describe('resolveChannels', () => {
  it('opens the channels of a single valid policy', () => {
    const a = file('alpha', ['c1', 'c2']);
    const r = resolveChannels(input({ files: [a] }));
    expect([...r.channels.keys()].sort()).toEqual(['c1', 'c2']);
    expect(r.channels.get('c1')).toEqual({ policyName: 'alpha', hash: a.hash, policy: a.policy });
    expect(r.channels.get('c2')?.policyName).toBe('alpha');
    expect(r.closed.size).toBe(0);
    expect(r.problems).toEqual([]);
    expect(r.active.get('alpha')).toEqual({ name: 'alpha', hash: a.hash, policy: a.policy, origin: 'file' });
  });

  it('closes a channel claimed by two policies and keeps their other channels open', () => {
    const r = resolveChannels(
      input({ files: [file('alpha', ['c1', 'shared']), file('beta', ['shared', 'c2'])] }),
    );
    expect(r.channels.has('shared')).toBe(false);
    const reasons = r.closed.get('shared');
    expect(reasons).toHaveLength(1);
    expect(reasons![0]).toContain('alpha');
    expect(reasons![0]).toContain('beta');
    expect(r.channels.get('c1')?.policyName).toBe('alpha');
    expect(r.channels.get('c2')?.policyName).toBe('beta');
    expect(r.closed.has('c1')).toBe(false);
    expect(r.closed.has('c2')).toBe(false);
    expect([...r.active.keys()].sort()).toEqual(['alpha', 'beta']);
  });

  it("closes a failed file's claimed channels even when a valid policy claims them", () => {
    const r = resolveChannels(
      input({
        files: [file('alpha', ['c1', 'c2'])],
        failedFiles: [{ file: 'broken.json', name: 'gamma', claimedChannels: ['c1', 'c3'] }],
      }),
    );
    expect(r.channels.has('c1')).toBe(false);
    expect(r.closed.get('c1')).toEqual([expect.stringContaining('broken.json')]);
    expect(r.closed.get('c3')).toEqual([expect.stringContaining('broken.json')]);
    expect(r.channels.get('c2')?.policyName).toBe('alpha');
    expect(r.active.has('alpha')).toBe(true);
  });

  it('closes a failed file’s channels even when it has no name', () => {
    const r = resolveChannels(
      input({ failedFiles: [{ file: 'garbage.json', name: null, claimedChannels: ['c9'] }] }),
    );
    expect(r.closed.has('c9')).toBe(true);
    expect(r.channels.size).toBe(0);
  });

  it('lets a pin override the file version', () => {
    const a = file('alpha', ['c1'], 'alpha.json', 'hash-file');
    const pinnedPolicy = policy('alpha', ['c1', 'c9']);
    const r = resolveChannels(
      input({
        files: [a],
        pins: new Map([['alpha', 'hash-pin']]),
        pinned: new Map([['hash-pin', { ok: true as const, policy: pinnedPolicy }]]),
      }),
    );
    expect(r.active.get('alpha')).toEqual({
      name: 'alpha',
      hash: 'hash-pin',
      policy: pinnedPolicy,
      origin: 'pin',
    });
    expect(r.channels.get('c1')).toEqual({ policyName: 'alpha', hash: 'hash-pin', policy: pinnedPolicy });
    expect(r.channels.get('c9')?.hash).toBe('hash-pin');
    expect(r.closed.size).toBe(0);
    expect(r.problems).toEqual([]);
  });

  it('activates a pin with no file behind it', () => {
    const pinnedPolicy = policy('alpha', ['c1']);
    const r = resolveChannels(
      input({
        pins: new Map([['alpha', 'hash-pin']]),
        pinned: new Map([['hash-pin', { ok: true as const, policy: pinnedPolicy }]]),
      }),
    );
    expect(r.active.get('alpha')?.origin).toBe('pin');
    expect(r.channels.get('c1')?.hash).toBe('hash-pin');
  });

  it("closes a policy's channels when its pinned version failed verification", () => {
    const r = resolveChannels(
      input({
        files: [file('alpha', ['c1', 'c2']), file('beta', ['c3'])],
        pins: new Map([['alpha', 'hash-pin']]),
        pinned: new Map([['hash-pin', { ok: false as const, reason: 'bad signature' }]]),
      }),
    );
    expect(r.active.has('alpha')).toBe(false);
    expect(r.channels.has('c1')).toBe(false);
    expect(r.channels.has('c2')).toBe(false);
    expect(r.closed.get('c1')).toEqual([expect.stringContaining('bad signature')]);
    expect(r.closed.get('c2')).toEqual([expect.stringContaining('bad signature')]);
    expect(r.problems).toEqual([{ name: 'alpha', reason: expect.stringContaining('hash-pin') }]);
    expect(r.problems[0]!.reason).toContain('bad signature');
    expect(r.channels.get('c3')?.policyName).toBe('beta');
  });

  it('treats a pin whose version was not loaded as failed', () => {
    const r = resolveChannels(
      input({ files: [file('alpha', ['c1'])], pins: new Map([['alpha', 'hash-missing']]) }),
    );
    expect(r.active.has('alpha')).toBe(false);
    expect(r.closed.has('c1')).toBe(true);
    expect(r.problems).toEqual([{ name: 'alpha', reason: expect.stringContaining('not loaded') }]);
  });

  it('closes both files that define the same policy_name', () => {
    const r = resolveChannels(
      input({ files: [file('alpha', ['c1'], 'a1.json'), file('alpha', ['c2'], 'a2.json')] }),
    );
    expect(r.active.has('alpha')).toBe(false);
    expect(r.channels.size).toBe(0);
    for (const c of ['c1', 'c2']) {
      const reasons = r.closed.get(c);
      expect(reasons).toHaveLength(1);
      expect(reasons![0]).toContain('a1.json');
      expect(reasons![0]).toContain('a2.json');
    }
    expect(r.problems).toEqual([{ name: 'alpha', reason: expect.stringContaining('2 files') }]);
  });

  it("closes a valid policy's channels when a failed file has the same name", () => {
    const r = resolveChannels(
      input({
        files: [file('alpha', ['c1']), file('beta', ['c2'])],
        failedFiles: [{ file: 'alpha-v2.json', name: 'alpha', claimedChannels: [] }],
      }),
    );
    expect(r.active.has('alpha')).toBe(false);
    expect(r.channels.has('c1')).toBe(false);
    expect(r.closed.get('c1')).toEqual([expect.stringContaining('alpha')]);
    expect(r.problems).toEqual([{ name: 'alpha', reason: expect.any(String) }]);
    expect(r.channels.get('c2')?.policyName).toBe('beta');
  });

  it('leaves an unknown channel neither open nor closed', () => {
    const r = resolveChannels(
      input({
        files: [file('alpha', ['c1'])],
        failedFiles: [{ file: 'broken.json', name: null, claimedChannels: ['c2'] }],
      }),
    );
    expect(r.channels.has('nowhere')).toBe(false);
    expect(r.closed.has('nowhere')).toBe(false);
  });

  it('resolves nothing from nothing', () => {
    const r = resolveChannels(input({}));
    expect(r.active.size).toBe(0);
    expect(r.channels.size).toBe(0);
    expect(r.closed.size).toBe(0);
    expect(r.problems).toEqual([]);
  });
});
