import { jcsSha256B64u } from './jcs.js';

/** What the plugin needs of the pinned WPC's approval policy (`metadata.claw_approvals`). */
export interface PinnedPolicy {
  hash: string;
  name: string;
  allow: string[];
  deny: string[];
  gated: string[];
  channels: string[];
  /** The CST audience, redeemed as such. */
  audience: string;
  /** `execution.simulate_first`, when the policy has it. */
  simulateFirst: { simulationTool: string; requiredBefore: string[] } | null;
}

export type ToolGate = { gate: 'auto' } | { gate: 'gated' } | { gate: 'denied'; reason: string };

export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}

function strings(value: unknown, path: string): string[] {
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string'))
    throw new PolicyError(`the pinned policy's ${path} is not a list of names`);
  return value;
}

function objectAt(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new PolicyError(`the pinned policy has no ${path}`);
  return value as Record<string, unknown>;
}

/**
 * Reads the approval policy out of a `GET /v1/wpc/:hash` answer, after checking that the
 * payload is the one pinned: the answer names the hash, and base64url(SHA-256(JCS(payload)))
 * is that hash. A server that answered another policy, or a changed one, is refused.
 */
export function pinnedPolicyFrom(answer: unknown, pinned: string): PinnedPolicy {
  const body = objectAt(answer, 'answer');
  const envelope = objectAt(body.envelope, 'envelope');
  if (body.policy_hash_b64u !== pinned || envelope.payload_hash_b64u !== pinned)
    throw new PolicyError(`the server answered another policy than the pinned ${pinned}`);
  const payload = objectAt(envelope.payload, 'payload');
  let hash: string;
  try {
    hash = jcsSha256B64u(payload);
  } catch {
    throw new PolicyError('the pinned policy payload is not JSON');
  }
  if (hash !== pinned) throw new PolicyError(`the policy payload the server sent does not hash to ${pinned}`);
  const policy = objectAt(objectAt(payload.metadata, 'metadata').claw_approvals, 'metadata.claw_approvals');
  const tools = objectAt(policy.tools, 'tools');
  const execution = objectAt(policy.execution, 'execution');
  const channel = objectAt(policy.channel_context, 'channel_context');
  const token = objectAt(policy.token_requirements, 'token_requirements');
  if (typeof policy.policy_name !== 'string') throw new PolicyError('the pinned policy has no policy_name');
  if (typeof token.audience !== 'string' || token.audience === '')
    throw new PolicyError('the pinned policy names no token audience');
  let simulateFirst: PinnedPolicy['simulateFirst'] = null;
  if (execution.simulate_first !== undefined) {
    const simulate = objectAt(execution.simulate_first, 'execution.simulate_first');
    if (typeof simulate.simulation_tool !== 'string')
      throw new PolicyError("the pinned policy's simulate_first names no simulation_tool");
    simulateFirst = {
      simulationTool: simulate.simulation_tool,
      requiredBefore: strings(simulate.required_before, 'execution.simulate_first.required_before'),
    };
  }
  return {
    hash,
    name: policy.policy_name,
    allow: strings(tools.allow, 'tools.allow'),
    deny: strings(tools.deny ?? [], 'tools.deny'),
    gated: strings(execution.require_human_approval_for, 'execution.require_human_approval_for'),
    channels: strings(channel.allowed_channel_ids, 'channel_context.allowed_channel_ids'),
    audience: token.audience,
    simulateFirst,
  };
}

/** A policy tool pattern: `*` matches any run of characters, nothing else is special. */
export function matchesPattern(pattern: string, name: string): boolean {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`).test(name);
}

const matchesAny = (patterns: readonly string[], name: string) =>
  patterns.some((p) => matchesPattern(p, name));

/**
 * How the pinned policy treats a tool, by the server's rules (`classifyPlan`): allowlist only,
 * deny wins, and an allowed tool matching `require_human_approval_for` is gated. A tool the
 * policy does not allow is blocked here, as the server would refuse any plan that uses it. So
 * is a tool under `simulate_first.required_before`, gated or not: the server refuses it
 * without an earlier simulation step in the same plan, and one call is a one-step plan, so it
 * could never have one. Deciding that here, from the pinned and hash-checked policy, keeps an
 * ungated tool from running on the plugin's word where the server would have refused it.
 */
export function classifyTool(policy: PinnedPolicy, tool: string): ToolGate {
  if (matchesAny(policy.deny, tool))
    return { gate: 'denied', reason: `${tool} is denied by policy ${policy.name}` };
  if (!matchesAny(policy.allow, tool))
    return { gate: 'denied', reason: `${tool} is not on the allowlist of policy ${policy.name}` };
  const simulate = policy.simulateFirst;
  if (simulate && matchesAny(simulate.requiredBefore, tool))
    return {
      gate: 'denied',
      reason: `policy ${policy.name} lets ${tool} run only after a ${simulate.simulationTool} step in the same plan (simulate_first); a single tool call cannot have one`,
    };
  return matchesAny(policy.gated, tool) ? { gate: 'gated' } : { gate: 'auto' };
}

/**
 * Fetches the pinned WPC once: it is immutable by its hash, so a success is kept for good. A
 * failure is not kept, so the next tool call asks again (and is blocked meanwhile).
 */
export function pinnedPolicyLoader(opts: {
  serverUrl: string;
  policyHash: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}): () => Promise<PinnedPolicy> {
  let loaded: PinnedPolicy | undefined;
  let inFlight: Promise<PinnedPolicy> | undefined;
  const doFetch = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const load = async (): Promise<PinnedPolicy> => {
    let res: Response;
    let text: string;
    try {
      res = await doFetch(`${opts.serverUrl}/v1/wpc/${opts.policyHash}`, {
        headers: { accept: 'application/json' },
        redirect: 'manual',
        signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
      });
      text = await res.text();
    } catch (err) {
      throw new PolicyError(`the claw-approvals server is unreachable (${detailOf(err)})`);
    }
    if (res.status !== 200) {
      throw new PolicyError(
        res.status === 404
          ? `the server does not know the pinned policy ${opts.policyHash}`
          : `the server answered HTTP ${res.status} for the pinned policy`,
      );
    }
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      throw new PolicyError('the server answered the pinned policy without JSON');
    }
    return pinnedPolicyFrom(answer, opts.policyHash);
  };
  // One fetch at a time, not tied to any one tool call's signal: calls waiting on it share it.
  return async () => {
    if (loaded) return loaded;
    inFlight ??= load().finally(() => {
      inFlight = undefined;
    });
    loaded = await inFlight;
    return loaded;
  };
}

/** A network failure in words that hold no request data. */
export function detailOf(err: unknown): string {
  const cause = (err as { cause?: unknown } | null)?.cause;
  for (const e of [cause, err]) {
    const code = (e as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code)) return code;
  }
  return err instanceof Error ? err.name : 'unknown error';
}
