import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Approval, evaluateQuorum, type QuorumRule } from '../../src/approvals/quorum.js';

const twoPerson: QuorumRule = { requiredApprovals: 2, distinctGroups: true, allowedGroups: ['ops', 'sec'] };

describe('evaluateQuorum: examples', () => {
  it('two approvers from different groups meet the two-person rule', () => {
    const r = evaluateQuorum(twoPerson, [
      { userId: 'alice', groups: ['ops'] },
      { userId: 'bob', groups: ['sec'] },
    ]);
    expect(r).toEqual({
      met: true,
      counted: [
        { userId: 'alice', group: 'ops' },
        { userId: 'bob', group: 'sec' },
      ],
      missing: 0,
      openGroups: [],
    });
  });

  it('two approvers from the same group do not', () => {
    const r = evaluateQuorum(twoPerson, [
      { userId: 'alice', groups: ['ops'] },
      { userId: 'carol', groups: ['ops'] },
    ]);
    expect(r).toMatchObject({ met: false, missing: 1, openGroups: ['sec'] });
  });

  it('the same person twice counts once, even across groups', () => {
    const r = evaluateQuorum(twoPerson, [
      { userId: 'dave', groups: ['ops', 'sec'] },
      { userId: 'dave', groups: ['ops', 'sec'] },
    ]);
    expect(r).toMatchObject({ met: false, missing: 1 });
    expect(r.counted).toHaveLength(1);
  });

  it('a person in two groups is placed where they make the quorum possible (matching, not greedy)', () => {
    // dave approves first and could take "ops"; erin can only fill "ops"; dave must move to "sec".
    const r = evaluateQuorum(twoPerson, [
      { userId: 'dave', groups: ['ops', 'sec'] },
      { userId: 'erin', groups: ['ops'] },
    ]);
    expect(r.met).toBe(true);
    expect(r.counted).toEqual([
      { userId: 'dave', group: 'sec' },
      { userId: 'erin', group: 'ops' },
    ]);
  });

  it('three approvers over two required groups', () => {
    const r = evaluateQuorum(twoPerson, [
      { userId: 'a', groups: ['ops'] },
      { userId: 'b', groups: ['ops'] },
      { userId: 'c', groups: ['sec'] },
    ]);
    expect(r.met).toBe(true);
    expect(new Set(r.counted.map((c) => c.group))).toEqual(new Set(['ops', 'sec']));
  });

  it('members of groups the step does not allow do not count', () => {
    const r = evaluateQuorum(twoPerson, [
      { userId: 'x', groups: ['finance'] },
      { userId: 'y', groups: ['ops'] },
    ]);
    expect(r).toMatchObject({ met: false, missing: 1 });
  });

  it('without distinct groups, any two eligible people suffice', () => {
    const r = evaluateQuorum({ ...twoPerson, distinctGroups: false }, [
      { userId: 'alice', groups: ['ops'] },
      { userId: 'carol', groups: ['ops'] },
    ]);
    expect(r).toMatchObject({ met: true, missing: 0, openGroups: [] });
  });
});

/** Brute force: is there an injective assignment of `k` distinct people to distinct allowed groups? */
function bruteForce(rule: QuorumRule, approvals: Approval[]): boolean {
  const byUser = new Map<string, Set<string>>();
  for (const a of approvals) byUser.set(a.userId, new Set([...(byUser.get(a.userId) ?? []), ...a.groups]));
  const people = [...byUser.values()].map((g) => [...g].filter((x) => rule.allowedGroups.includes(x)));
  const eligible = people.filter((g) => g.length > 0);
  if (!rule.distinctGroups) return eligible.length >= rule.requiredApprovals;
  const best = (i: number, used: Set<string>): number => {
    if (i === eligible.length) return 0;
    let max = best(i + 1, used);
    for (const g of eligible[i]!) {
      if (used.has(g)) continue;
      used.add(g);
      max = Math.max(max, 1 + best(i + 1, used));
      used.delete(g);
    }
    return max;
  };
  return best(0, new Set()) >= rule.requiredApprovals;
}

const groups = ['g1', 'g2', 'g3', 'g4'];
const ruleArb = fc.record({
  requiredApprovals: fc.integer({ min: 1, max: 4 }),
  distinctGroups: fc.boolean(),
  allowedGroups: fc.subarray(groups, { minLength: 1 }),
});
const approvalsArb = fc.array(
  fc.record({
    userId: fc.constantFrom('u1', 'u2', 'u3', 'u4', 'u5', 'u6'),
    groups: fc.subarray([...groups, 'other']),
  }),
  { maxLength: 8 },
);

describe('evaluateQuorum: properties', () => {
  it('agrees with a brute-force search on every small instance', () => {
    fc.assert(
      fc.property(ruleArb, approvalsArb, (rule, approvals) => {
        expect(evaluateQuorum(rule, approvals).met).toBe(bruteForce(rule, approvals));
      }),
      { numRuns: 3000 },
    );
  });

  it('counts each person once, each group once (when distinct), and only real memberships', () => {
    fc.assert(
      fc.property(ruleArb, approvalsArb, (rule, approvals) => {
        const r = evaluateQuorum(rule, approvals);
        const users = r.counted.map((c) => c.userId);
        expect(new Set(users).size).toBe(users.length);
        if (rule.distinctGroups) expect(new Set(r.counted.map((c) => c.group)).size).toBe(r.counted.length);
        for (const c of r.counted) {
          expect(rule.allowedGroups).toContain(c.group);
          expect(approvals.some((a) => a.userId === c.userId && [...a.groups].includes(c.group))).toBe(true);
        }
        expect(r.counted.length).toBeLessThanOrEqual(rule.requiredApprovals);
        expect(r.missing).toBe(rule.requiredApprovals - r.counted.length);
        expect(r.met).toBe(r.missing === 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('repeating an approval never helps; adding an approval never hurts', () => {
    fc.assert(
      fc.property(ruleArb, approvalsArb, fc.nat(), (rule, approvals, pick) => {
        const base = evaluateQuorum(rule, approvals);
        if (approvals.length) {
          const again = approvals[pick % approvals.length]!;
          expect(evaluateQuorum(rule, [...approvals, again]).counted.length).toBe(base.counted.length);
        }
        const more = evaluateQuorum(rule, [...approvals, { userId: 'newcomer', groups: rule.allowedGroups }]);
        expect(more.counted.length).toBeGreaterThanOrEqual(base.counted.length);
      }),
      { numRuns: 1000 },
    );
  });
});
