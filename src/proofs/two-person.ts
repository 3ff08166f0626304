/**
 * The two-person rule re-checked from a proof bundle alone (issue 10 section 3): the rule a
 * gated step was minted under, and who counted for it, as recorded when quorum was evaluated.
 * Pure and self-contained (no imports, no I/O), so the same code runs in `bundle verify` and in
 * the reviewer's browser. It checks the snapshot's own consistency; whether the snapshot matches
 * the event chain and the signed policy is the bundle verifier's business.
 */

/** How a counted approver was found in a group: the groups-file entry that matched. */
export interface SnapshotMembership {
  group: string;
  via: 'user_id' | 'mattermost_group' | 'mattermost_channel';
  ref: string;
}

export interface SnapshotApprover {
  user_id: string;
  username: string | null;
  post_id: string | null;
  approval_event_hash_b64u: string;
  /** The group this approver filled. */
  counted_for: string;
  found_in: SnapshotMembership[];
}

export interface SnapshotRule {
  required_approvals: number;
  allowed_approver_groups: string[];
  distinct_groups: boolean;
  allow_requester_approval: boolean;
}

/** What the `token_minted` event of a gated step records (hashed into the chain). */
export interface ApprovalRecord {
  rule: SnapshotRule;
  requester_id: string;
  evaluated_at: string;
  approvers: SnapshotApprover[];
}

/** As sealed into `metadata.claw_approvals.steps[i].approval`: the record and the event holding it. */
export interface ApprovalSnapshot extends ApprovalRecord {
  mint_event_hash_b64u: string;
}

export type TwoPersonReason =
  | 'APPROVAL_QUORUM_NOT_MET'
  | 'APPROVAL_BY_REQUESTER'
  | 'APPROVAL_GROUPS_NOT_DISTINCT'
  | 'APPROVAL_SNAPSHOT_INVALID';

export interface TwoPersonFailure {
  reason: TwoPersonReason;
  message: string;
}

const VIAS: readonly string[] = ['user_id', 'mattermost_group', 'mattermost_channel'];
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): v is string => typeof v === 'string' && v.trim().length > 0;
const isIdOrNull = (v: unknown): boolean => v === null || isId(v);

/** The first thing wrong with the snapshot's shape, or null when every field has its type. */
function shapeProblem(s: unknown): string | null {
  if (!isObject(s)) return 'the snapshot is not an object';
  const rule = s.rule;
  if (!isObject(rule)) return 'rule is not an object';
  const required = rule.required_approvals;
  if (typeof required !== 'number' || !Number.isInteger(required) || required < 1)
    return 'rule.required_approvals is not a positive integer';
  const groups = rule.allowed_approver_groups;
  if (!Array.isArray(groups) || groups.length === 0 || !groups.every(isId))
    return 'rule.allowed_approver_groups is not a non-empty list of group names';
  if (new Set(groups).size !== groups.length) return 'rule.allowed_approver_groups names a group twice';
  if (typeof rule.distinct_groups !== 'boolean') return 'rule.distinct_groups is not a boolean';
  if (typeof rule.allow_requester_approval !== 'boolean')
    return 'rule.allow_requester_approval is not a boolean';
  if (!isId(s.requester_id)) return 'requester_id is not a user id';
  if (
    typeof s.evaluated_at !== 'string' ||
    !ISO_INSTANT.test(s.evaluated_at) ||
    Number.isNaN(Date.parse(s.evaluated_at))
  )
    return 'evaluated_at is not an ISO 8601 instant';
  if (!isId(s.mint_event_hash_b64u)) return 'mint_event_hash_b64u is missing';
  if (!Array.isArray(s.approvers)) return 'approvers is not a list';
  for (const [i, a] of s.approvers.entries()) {
    const at = `approvers[${i}]`;
    if (!isObject(a)) return `${at} is not an object`;
    if (!isId(a.user_id)) return `${at}.user_id is not a user id`;
    if (!isIdOrNull(a.username)) return `${at}.username is neither a name nor null`;
    if (!isIdOrNull(a.post_id)) return `${at}.post_id is neither a post id nor null`;
    if (!isId(a.approval_event_hash_b64u)) return `${at}.approval_event_hash_b64u is missing`;
    if (!isId(a.counted_for)) return `${at}.counted_for is not a group name`;
    if (!Array.isArray(a.found_in) || a.found_in.length === 0)
      return `${at}.found_in is not a non-empty list`;
    for (const [j, m] of a.found_in.entries()) {
      if (!isObject(m) || !isId(m.group) || !VIAS.includes(m.via as string) || !isId(m.ref))
        return `${at}.found_in[${j}] is not {group, via: user_id|mattermost_group|mattermost_channel, ref}`;
      if (m.via === 'user_id' && m.ref !== a.user_id)
        return `${at}.found_in[${j}] says the group lists the user id, but names another (${m.ref})`;
    }
  }
  return null;
}

/**
 * Whether each approver can fill a distinct group among those they were found in, for
 * `needed` groups at least: a bipartite matching (Kuhn's augmenting paths), so a person found
 * in two groups still fills only one of them.
 */
function distinctGroupsAssignable(approvers: readonly SnapshotApprover[], needed: number): boolean {
  const owner = new Map<string, number>();
  const groupsOf = approvers.map((a) => [...new Set(a.found_in.map((m) => m.group))]);
  const augment = (i: number, seen: Set<string>): boolean => {
    for (const g of groupsOf[i]!) {
      if (seen.has(g)) continue;
      seen.add(g);
      const current = owner.get(g);
      if (current === undefined || augment(current, seen)) {
        owner.set(g, i);
        return true;
      }
    }
    return false;
  };
  let matched = 0;
  for (let i = 0; i < approvers.length; i++) if (augment(i, new Set())) matched += 1;
  return matched >= needed;
}

/**
 * Re-checks a step's two-person rule from its sealed snapshot: every counted approver was found
 * in an allowed group and counted for one of the groups they were found in; one person counts
 * once; the requester counts only where the rule allows it; at least `required_approvals`
 * people counted; with `distinct_groups`, each filled a group of their own. Null when it holds.
 */
export function checkTwoPerson(snapshot: ApprovalSnapshot): TwoPersonFailure | null {
  const invalid = (message: string): TwoPersonFailure => ({ reason: 'APPROVAL_SNAPSHOT_INVALID', message });
  const problem = shapeProblem(snapshot as unknown);
  if (problem !== null) return invalid(problem);
  const { rule, approvers } = snapshot;
  const allowed = new Set(rule.allowed_approver_groups);

  const seen = new Set<string>();
  for (const a of approvers) {
    if (seen.has(a.user_id)) return invalid(`approver ${a.user_id} is counted twice`);
    seen.add(a.user_id);
    const groups = a.found_in.map((m) => m.group);
    if (new Set(groups).size !== groups.length)
      return invalid(`approver ${a.user_id} is recorded in one group twice`);
    const outside = groups.find((g) => !allowed.has(g));
    if (outside !== undefined)
      return invalid(`approver ${a.user_id} is recorded in ${outside}, which the rule does not allow`);
    if (!groups.includes(a.counted_for))
      return invalid(`approver ${a.user_id} is counted for ${a.counted_for}, a group they were not found in`);
  }

  if (!rule.allow_requester_approval && seen.has(snapshot.requester_id)) {
    return {
      reason: 'APPROVAL_BY_REQUESTER',
      message: `the requester ${snapshot.requester_id} is counted as an approver, which the rule does not allow`,
    };
  }
  if (approvers.length < rule.required_approvals) {
    return {
      reason: 'APPROVAL_QUORUM_NOT_MET',
      message: `${approvers.length} of ${rule.required_approvals} required approvals are recorded`,
    };
  }
  if (rule.distinct_groups) {
    if (!distinctGroupsAssignable(approvers, rule.required_approvals)) {
      return {
        reason: 'APPROVAL_GROUPS_NOT_DISTINCT',
        message: `the approvers cannot fill ${rule.required_approvals} distinct groups of ${rule.allowed_approver_groups.join(', ')}`,
      };
    }
    const filled = approvers.map((a) => a.counted_for);
    if (new Set(filled).size !== filled.length)
      return invalid('two approvers are counted for one group although the rule asks for distinct groups');
  }
  return null;
}
