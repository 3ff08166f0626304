import { pointerToPath } from './validate-policy.js';

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
