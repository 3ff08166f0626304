/**
 * The two-person rule (SPEC section 2 rules 3 and 4), as a pure function of who approved
 * and which allowed groups each of them belongs to *now*. One person counts once; with
 * `distinctGroups`, approvals must be assignable one-to-one to distinct groups, which is a
 * bipartite matching problem (a person in two groups still fills only one of them).
 */

export interface QuorumRule {
  requiredApprovals: number;
  distinctGroups: boolean;
  /** Groups whose members may approve this step. */
  allowedGroups: readonly string[];
}

export interface Approval {
  userId: string;
  /** The approver's current groups (any; only allowed ones count). */
  groups: Iterable<string>;
}

export interface QuorumResult {
  met: boolean;
  /** Who counts, and for which group, in approval order. */
  counted: { userId: string; group: string }[];
  /** Approvals still needed. */
  missing: number;
  /** With distinct groups: allowed groups not yet filled by anyone. */
  openGroups: string[];
}

/** Kuhn's augmenting paths; approvers are tried in approval order, so earlier approvals keep their place. */
function maximumMatching(candidates: { userId: string; groups: string[] }[]): Map<string, string> {
  const groupOwner = new Map<string, string>();
  const groupsOf = new Map(candidates.map((c) => [c.userId, c.groups]));
  const augment = (userId: string, seen: Set<string>): boolean => {
    for (const group of groupsOf.get(userId) ?? []) {
      if (seen.has(group)) continue;
      seen.add(group);
      const owner = groupOwner.get(group);
      if (owner === undefined || augment(owner, seen)) {
        groupOwner.set(group, userId);
        return true;
      }
    }
    return false;
  };
  for (const c of candidates) augment(c.userId, new Set());
  return new Map([...groupOwner].map(([group, userId]) => [userId, group]));
}

export function evaluateQuorum(rule: QuorumRule, approvals: readonly Approval[]): QuorumResult {
  const allowed = new Set(rule.allowedGroups);
  // One person counts once, in the order of their first approval; their groups are all the
  // allowed groups they belong to (membership is a property of the person, not the post).
  const groupsByUser = new Map<string, Set<string>>();
  for (const a of approvals) {
    const mine = groupsByUser.get(a.userId) ?? new Set<string>();
    for (const g of a.groups) if (allowed.has(g)) mine.add(g);
    groupsByUser.set(a.userId, mine);
  }
  const candidates = [...groupsByUser]
    .filter(([, g]) => g.size > 0)
    .map(([userId, g]) => ({ userId, groups: [...g].sort() }));

  let counted: QuorumResult['counted'];
  if (rule.distinctGroups) {
    const assignment = maximumMatching(candidates);
    counted = candidates.flatMap((c) => {
      const group = assignment.get(c.userId);
      return group ? [{ userId: c.userId, group }] : [];
    });
  } else {
    counted = candidates.map((c) => ({ userId: c.userId, group: c.groups[0]! }));
  }
  counted = counted.slice(0, rule.requiredApprovals);
  const filled = new Set(counted.map((c) => c.group));
  return {
    met: counted.length >= rule.requiredApprovals,
    counted,
    missing: Math.max(0, rule.requiredApprovals - counted.length),
    openGroups: rule.distinctGroups ? rule.allowedGroups.filter((g) => !filled.has(g)) : [],
  };
}
