import { pointerToPath } from './validate-policy.js';
import { approvalPolicyOf, carriedApprovalPolicy, isWpcV1Payload } from './wpc-payload.js';

export interface PolicyChange {
  kind: 'added' | 'removed' | 'changed';
  path: string;
  before?: unknown;
  after?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Structural difference between two policies, path by path, in key order (deterministic). */
export function diffPolicies(before: unknown, after: unknown, pointer = ''): PolicyChange[] {
  const path = pointerToPath(pointer);
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => {
      const child = `${pointer}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (!Object.hasOwn(after, k))
        return [{ kind: 'removed' as const, path: pointerToPath(child), before: before[k] }];
      if (!Object.hasOwn(before, k))
        return [{ kind: 'added' as const, path: pointerToPath(child), after: after[k] }];
      return diffPolicies(before[k], after[k], child);
    });
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    // Lists of names (tools, groups, ids) read best as set differences.
    if ([...before, ...after].every((v) => typeof v === 'string')) {
      const b = new Set(before as string[]);
      const a = new Set(after as string[]);
      return [
        ...[...b]
          .filter((v) => !a.has(v))
          .map((v) => ({ kind: 'removed' as const, path: `${path}[]`, before: v })),
        ...[...a]
          .filter((v) => !b.has(v))
          .map((v) => ({ kind: 'added' as const, path: `${path}[]`, after: v })),
      ];
    }
    const changes: PolicyChange[] = [];
    for (let i = 0; i < Math.max(before.length, after.length); i++) {
      if (i >= after.length) changes.push({ kind: 'removed', path: `${path}[${i}]`, before: before[i] });
      else if (i >= before.length) changes.push({ kind: 'added', path: `${path}[${i}]`, after: after[i] });
      else changes.push(...diffPolicies(before[i], after[i], `${pointer}/${i}`));
    }
    return changes;
  }
  return Object.is(before, after) || JSON.stringify(before) === JSON.stringify(after)
    ? []
    : [{ kind: 'changed', path, before, after }];
}

export function formatChanges(changes: readonly PolicyChange[]): string {
  const show = (v: unknown) => JSON.stringify(v);
  return changes
    .map((c) =>
      c.kind === 'added'
        ? `+ ${c.path}: ${show(c.after)}`
        : c.kind === 'removed'
          ? `- ${c.path}: ${show(c.before)}`
          : `~ ${c.path}: ${show(c.before)} -> ${show(c.after)}`,
    )
    .join('\n');
}

/** A policy version to compare: its approval policy, and the form it is (or will be) signed in. */
export interface PolicyVersion {
  policy: unknown;
  form: 'wpc_v1' | 'legacy';
}

const FORM_NAMES: Record<PolicyVersion['form'], string> = {
  legacy: 'legacy approval policy (signed before WPC v1)',
  wpc_v1: 'Claw Bureau WPC v1',
};

/** A verified, signed payload of either form. */
export function versionOfPayload(payload: unknown): PolicyVersion {
  return { policy: approvalPolicyOf(payload), form: isWpcV1Payload(payload) ? 'wpc_v1' : 'legacy' };
}

/** A policy file of either form, unvalidated: whatever it is, it will be signed as WPC v1. */
export function versionOfFile(value: unknown): PolicyVersion {
  return { policy: carriedApprovalPolicy(value), form: 'wpc_v1' };
}

/**
 * What changes between two versions: their approval policies, path by path (every gateway
 * field derives from them), preceded by a change of payload form when there is one.
 */
export function diffVersions(before: PolicyVersion, after: PolicyVersion): PolicyChange[] {
  const form: PolicyChange[] =
    before.form === after.form
      ? []
      : [
          {
            kind: 'changed',
            path: '(payload form)',
            before: FORM_NAMES[before.form],
            after: FORM_NAMES[after.form],
          },
        ];
  return [...form, ...diffPolicies(before.policy, after.policy)];
}
