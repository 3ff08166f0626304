import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evaluateQuorum } from '../../src/approvals/quorum.js';
import {
  type ApprovalSnapshot,
  checkTwoPerson,
  type SnapshotApprover,
  type TwoPersonReason,
} from '../../src/proofs/two-person.js';

const HASH = 'A'.repeat(43);

function approver(userId: string, countedFor: string, groups: string[] = [countedFor]): SnapshotApprover {
  return {
    user_id: userId,
    username: `${userId}.name`,
    post_id: null,
    approval_event_hash_b64u: HASH,
    counted_for: countedFor,
    found_in: groups.map((group) => ({ group, via: 'user_id', ref: userId })),
  };
}

/** Two approvers from two distinct groups, the requester not among them: the rule holds. */
function snapshot(change: (s: ApprovalSnapshot) => void = () => {}): ApprovalSnapshot {
  const s: ApprovalSnapshot = {
    rule: {
      required_approvals: 2,
      allowed_approver_groups: ['sre', 'security'],
      distinct_groups: true,
      allow_requester_approval: false,
    },
    requester_id: 'requester',
    evaluated_at: '2026-11-21T10:00:00.000Z',
    mint_event_hash_b64u: HASH,
    approvers: [approver('alice', 'sre'), approver('bob', 'security')],
  };
  change(s);
  return s;
}

const reasonOf = (s: unknown) => checkTwoPerson(s as ApprovalSnapshot)?.reason ?? null;

describe('checkTwoPerson: rules that hold', () => {
  it('two approvers from distinct groups', () => {
    expect(checkTwoPerson(snapshot())).toBeNull();
  });

  it('without distinct groups, two approvers from one group', () => {
    const s = snapshot((x) => {
      x.rule.distinct_groups = false;
      x.approvers = [approver('alice', 'sre'), approver('carol', 'sre')];
    });
    expect(checkTwoPerson(s)).toBeNull();
  });

  it('the requester among the approvers where the rule allows it', () => {
    const s = snapshot((x) => {
      x.rule.allow_requester_approval = true;
      x.approvers[0] = approver('requester', 'sre');
    });
    expect(checkTwoPerson(s)).toBeNull();
  });

  it('a person found in both groups, counted for one, the other filled by someone else', () => {
    const s = snapshot((x) => {
      x.approvers = [approver('alice', 'security', ['sre', 'security']), approver('carol', 'sre')];
    });
    expect(checkTwoPerson(s)).toBeNull();
  });

  it('members found through Mattermost (a group, a channel) count like listed ones', () => {
    const s = snapshot((x) => {
      x.approvers[0]!.found_in = [
        { group: 'sre', via: 'mattermost_group', ref: 'mmgroup0000000000000000001' },
      ];
      x.approvers[1]!.found_in = [
        { group: 'security', via: 'mattermost_channel', ref: 'channel0000000000000000001' },
      ];
      x.approvers[1]!.post_id = 'post00000000000000000000001';
      x.approvers[1]!.username = null;
    });
    expect(checkTwoPerson(s)).toBeNull();
  });

  it('more approvers than required', () => {
    const s = snapshot((x) => {
      x.rule.required_approvals = 1;
    });
    expect(checkTwoPerson(s)).toBeNull();
  });
});

describe('checkTwoPerson: each named failure', () => {
  it.each<[string, (s: ApprovalSnapshot) => void]>([
    ['one approver of two', (s) => void s.approvers.pop()],
    ['no approver at all', (s) => void (s.approvers = [])],
    ['two approvers of three', (s) => void (s.rule.required_approvals = 3)],
  ])('APPROVAL_QUORUM_NOT_MET: %s', (_what, change) => {
    const failure = checkTwoPerson(snapshot(change));
    expect(failure?.reason).toBe('APPROVAL_QUORUM_NOT_MET');
    expect(failure?.message).toMatch(/of \d required approvals/);
  });

  it('APPROVAL_BY_REQUESTER: the requester counted where the rule excludes them, even with enough others', () => {
    const counted = snapshot((s) => {
      s.approvers[0] = approver('requester', 'sre');
    });
    expect(checkTwoPerson(counted)).toMatchObject({ reason: 'APPROVAL_BY_REQUESTER' });
    const plusOthers = snapshot((s) => {
      s.approvers.push(approver('requester', 'sre'));
    });
    expect(reasonOf(plusOthers)).toBe('APPROVAL_BY_REQUESTER');
    // The requester alone: the exclusion is named, not the missing approval.
    const alone = snapshot((s) => {
      s.approvers = [approver('requester', 'sre')];
    });
    expect(reasonOf(alone)).toBe('APPROVAL_BY_REQUESTER');
  });

  it('APPROVAL_GROUPS_NOT_DISTINCT: two approvers found only in one group', () => {
    const s = snapshot((x) => {
      x.approvers = [approver('alice', 'sre'), approver('carol', 'sre')];
    });
    expect(checkTwoPerson(s)).toMatchObject({ reason: 'APPROVAL_GROUPS_NOT_DISTINCT' });
  });

  it('APPROVAL_GROUPS_NOT_DISTINCT: a person in two groups fills only one of them', () => {
    // Three groups to fill: alice could take a or b, but bob has only a and carol only b.
    const s = snapshot((x) => {
      x.rule.required_approvals = 3;
      x.rule.allowed_approver_groups = ['a', 'b', 'c'];
      x.approvers = [approver('alice', 'c', ['a', 'b', 'c']), approver('bob', 'a'), approver('carol', 'b')];
    });
    expect(checkTwoPerson(s)).toBeNull();
    const noC = snapshot((x) => {
      x.rule.required_approvals = 3;
      x.rule.allowed_approver_groups = ['a', 'b', 'c'];
      x.approvers = [approver('alice', 'a', ['a', 'b']), approver('bob', 'a'), approver('carol', 'b')];
    });
    expect(reasonOf(noC)).toBe('APPROVAL_GROUPS_NOT_DISTINCT');
    // One person in both groups, alone: one approval, not two.
    const single = snapshot((x) => {
      x.approvers = [approver('alice', 'sre', ['sre', 'security'])];
    });
    expect(reasonOf(single)).toBe('APPROVAL_QUORUM_NOT_MET');
  });

  it('a one-to-one assignment exists but the recorded one counts two people for one group: the record is inconsistent', () => {
    const s = snapshot((x) => {
      x.approvers = [approver('alice', 'sre', ['sre', 'security']), approver('carol', 'sre')];
    });
    expect(checkTwoPerson(s)).toMatchObject({
      reason: 'APPROVAL_SNAPSHOT_INVALID',
      message: expect.stringContaining('counted for one group'),
    });
  });
});

describe('checkTwoPerson: malformed snapshots fail as APPROVAL_SNAPSHOT_INVALID, never throw', () => {
  const cases: [string, (s: Record<string, unknown> & ApprovalSnapshot) => void][] = [
    ['no rule', (s) => delete (s as Partial<ApprovalSnapshot>).rule],
    ['a rule that is a list', (s) => void ((s as Record<string, unknown>).rule = [])],
    ['required_approvals 0', (s) => void (s.rule.required_approvals = 0)],
    ['required_approvals 1.5', (s) => void (s.rule.required_approvals = 1.5)],
    [
      'required_approvals as text',
      (s) => void ((s.rule as unknown as Record<string, unknown>).required_approvals = '2'),
    ],
    ['no allowed groups', (s) => void (s.rule.allowed_approver_groups = [])],
    ['an allowed group twice', (s) => void (s.rule.allowed_approver_groups = ['sre', 'sre'])],
    [
      'an allowed group that is not a name',
      (s) => void ((s.rule.allowed_approver_groups as unknown[])[0] = 7),
    ],
    [
      'distinct_groups as text',
      (s) => void ((s.rule as unknown as Record<string, unknown>).distinct_groups = 'yes'),
    ],
    [
      'allow_requester_approval missing',
      (s) => delete (s.rule as Partial<ApprovalSnapshot['rule']>).allow_requester_approval,
    ],
    ['an empty requester', (s) => void (s.requester_id = '')],
    ['a blank requester', (s) => void (s.requester_id = '   ')],
    ['evaluated_at not a date', (s) => void (s.evaluated_at = 'yesterday')],
    ['evaluated_at an impossible date', (s) => void (s.evaluated_at = '2026-13-45T99:00:00Z')],
    ['no mint event hash', (s) => delete (s as Partial<ApprovalSnapshot>).mint_event_hash_b64u],
    ['approvers not a list', (s) => void ((s as Record<string, unknown>).approvers = { alice: 'sre' })],
    ['an approver that is null', (s) => void ((s.approvers as unknown[])[0] = null)],
    ['an approver without user id', (s) => void (s.approvers[0]!.user_id = '')],
    [
      'a username that is a number',
      (s) => void ((s.approvers[0] as unknown as Record<string, unknown>).username = 1),
    ],
    ['an empty post id', (s) => void (s.approvers[0]!.post_id = '')],
    [
      'no approval event hash',
      (s) => delete (s.approvers[0] as Partial<SnapshotApprover>).approval_event_hash_b64u,
    ],
    ['no counted_for', (s) => delete (s.approvers[0] as Partial<SnapshotApprover>).counted_for],
    ['found_in empty', (s) => void (s.approvers[0]!.found_in = [])],
    [
      'found_in not a list',
      (s) => void ((s.approvers[0] as unknown as Record<string, unknown>).found_in = 'sre'),
    ],
    [
      'a membership by an unknown way',
      (s) => void ((s.approvers[0]!.found_in[0] as unknown as Record<string, unknown>).via = 'hearsay'),
    ],
    ['a membership without ref', (s) => void (s.approvers[0]!.found_in[0]!.ref = '')],
    [
      'a listed-id membership naming another user',
      (s) => void (s.approvers[0]!.found_in[0]!.ref = 'mallory'),
    ],
    ['one person counted twice', (s) => void (s.approvers[1] = approver('alice', 'security'))],
    [
      'one group recorded twice for a person',
      (s) => void (s.approvers[0] = approver('alice', 'sre', ['sre', 'sre'])),
    ],
    [
      'a group the rule does not allow',
      (s) => void (s.approvers[0] = approver('alice', 'sre', ['sre', 'finance'])),
    ],
    [
      'counted for a group not found in',
      (s) => void (s.approvers[0] = approver('alice', 'security', ['sre'])),
    ],
    [
      'counted for a group outside the rule',
      (s) => void (s.approvers[0] = approver('alice', 'finance', ['finance'])),
    ],
  ];

  it.each(cases)('%s', (_what, change) => {
    const s = snapshot((x) => change(x as Record<string, unknown> & ApprovalSnapshot));
    const failure = checkTwoPerson(s);
    expect(failure?.reason).toBe('APPROVAL_SNAPSHOT_INVALID');
    expect(failure?.message.length).toBeGreaterThan(10);
  });

  it.each([null, undefined, 7, 'snapshot', [], [snapshot()], true])('a snapshot that is %j', (value) => {
    expect(reasonOf(value)).toBe('APPROVAL_SNAPSHOT_INVALID');
  });

  it('any JSON value at all gets an answer, never an exception', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const failure = checkTwoPerson(value as unknown as ApprovalSnapshot);
        expect(failure?.reason).toBe('APPROVAL_SNAPSHOT_INVALID');
      }),
      { numRuns: 2000 },
    );
  });

  it('removing any one field anywhere is noticed, never accepted', () => {
    const paths: (string | number)[][] = [];
    const walk = (v: unknown, at: (string | number)[]) => {
      if (typeof v !== 'object' || v === null) return;
      for (const [k, child] of Object.entries(v)) {
        const key = Array.isArray(v) ? Number(k) : k;
        paths.push([...at, key]);
        walk(child, [...at, key]);
      }
    };
    walk(snapshot(), []);
    expect(paths.length).toBeGreaterThan(25);
    for (const path of paths) {
      const s = snapshot() as unknown as Record<string | number, unknown>;
      let parent = s;
      for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
      const last = path.at(-1)!;
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else Reflect.deleteProperty(parent, last);
      // Dropping a whole approver (or the last membership of one) is a shorter list, not a gap:
      // it fails on quorum. Every other removal leaves a field missing.
      expect(reasonOf(s), path.join('.')).not.toBeNull();
    }
  });
});

/** A small world: people, allowed groups, and who is in which. */
const PEOPLE = ['requester', 'p1', 'p2', 'p3', 'p4', 'p5'];
const GROUPS = ['g1', 'g2', 'g3', 'g4'];
const worldArb = fc.record({
  required: fc.integer({ min: 1, max: 4 }),
  allowed: fc.subarray(GROUPS, { minLength: 1 }),
  distinct: fc.boolean(),
  allowRequester: fc.boolean(),
  approvals: fc.array(fc.record({ user: fc.constantFrom(...PEOPLE), groups: fc.subarray(GROUPS) }), {
    maxLength: 7,
  }),
});
type World = typeof worldArb extends fc.Arbitrary<infer T> ? T : never;

/** Whether `people` (their groups) can fill `needed` distinct groups: every assignment tried. */
function bruteDistinct(people: string[][], needed: number): boolean {
  const go = (i: number, used: Set<string>, filled: number): boolean => {
    if (filled >= needed) return true;
    if (i === people.length) return false;
    if (go(i + 1, used, filled)) return true;
    for (const g of people[i]!) {
      if (used.has(g)) continue;
      if (go(i + 1, new Set([...used, g]), filled + 1)) return true;
    }
    return false;
  };
  return go(0, new Set(), 0);
}

/** The snapshot the engine takes: evaluateQuorum over the live approvals, requester left out unless allowed. */
function engineSnapshot(w: World): { met: boolean; snapshot: ApprovalSnapshot } {
  const allowed = new Set(w.allowed);
  const live = w.approvals.filter((a) => w.allowRequester || a.user !== 'requester');
  const quorum = evaluateQuorum(
    { requiredApprovals: w.required, distinctGroups: w.distinct, allowedGroups: w.allowed },
    live.map((a) => ({ userId: a.user, groups: a.groups })),
  );
  const foundIn = (user: string) =>
    [...new Set(live.filter((a) => a.user === user).flatMap((a) => a.groups))]
      .filter((g) => allowed.has(g))
      .sort();
  return {
    met: quorum.met,
    snapshot: {
      rule: {
        required_approvals: w.required,
        allowed_approver_groups: w.allowed,
        distinct_groups: w.distinct,
        allow_requester_approval: w.allowRequester,
      },
      requester_id: 'requester',
      evaluated_at: '2026-11-21T10:00:00.000Z',
      mint_event_hash_b64u: HASH,
      approvers: quorum.counted.map((c) => approver(c.userId, c.group, foundIn(c.userId))),
    },
  };
}

describe('checkTwoPerson: properties', () => {
  it('what the engine counts when quorum is met always passes the offline check', () => {
    fc.assert(
      fc.property(worldArb, (w) => {
        const { met, snapshot: s } = engineSnapshot(w);
        if (met) expect(checkTwoPerson(s)).toBeNull();
        else expect(reasonOf(s)).not.toBeNull();
      }),
      { numRuns: 3000 },
    );
  });

  it('agrees with a brute-force reading of the rule on any consistent snapshot', () => {
    const snapshotArb = fc.record({
      required: fc.integer({ min: 1, max: 4 }),
      distinct: fc.boolean(),
      allowRequester: fc.boolean(),
      people: fc.uniqueArray(
        fc.record({
          user: fc.constantFrom(...PEOPLE),
          groups: fc.subarray(GROUPS, { minLength: 1 }),
          pick: fc.nat(),
        }),
        { selector: (p) => p.user, maxLength: 6 },
      ),
    });
    fc.assert(
      fc.property(snapshotArb, (x) => {
        const s: ApprovalSnapshot = {
          rule: {
            required_approvals: x.required,
            allowed_approver_groups: GROUPS,
            distinct_groups: x.distinct,
            allow_requester_approval: x.allowRequester,
          },
          requester_id: 'requester',
          evaluated_at: '2026-11-21T10:00:00Z',
          mint_event_hash_b64u: HASH,
          approvers: x.people.map((p) => approver(p.user, p.groups[p.pick % p.groups.length]!, p.groups)),
        };
        let expected: TwoPersonReason | null = null;
        const counted = x.people.map((p) => p.user);
        const assigned = s.approvers.map((a) => a.counted_for);
        if (!x.allowRequester && counted.includes('requester')) expected = 'APPROVAL_BY_REQUESTER';
        else if (counted.length < x.required) expected = 'APPROVAL_QUORUM_NOT_MET';
        else if (
          x.distinct &&
          !bruteDistinct(
            x.people.map((p) => p.groups),
            x.required,
          )
        )
          expected = 'APPROVAL_GROUPS_NOT_DISTINCT';
        else if (x.distinct && new Set(assigned).size !== assigned.length)
          expected = 'APPROVAL_SNAPSHOT_INVALID';
        expect(reasonOf(s)).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('never mutates the snapshot it checks', () => {
    fc.assert(
      fc.property(worldArb, (w) => {
        const { snapshot: s } = engineSnapshot(w);
        const before = JSON.stringify(s);
        checkTwoPerson(s);
        expect(JSON.stringify(s)).toBe(before);
      }),
      { numRuns: 300 },
    );
  });
});
