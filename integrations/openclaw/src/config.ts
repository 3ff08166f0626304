import { readFileSync } from 'node:fs';

/** What `plugins.entries.claw-approvals.config` holds, checked. */
export interface GateConfig {
  /** The claw-approvals server, e.g. `https://claw.example.com`. */
  serverUrl: string;
  /** The agent key (`claw-approvals agents create`): from a file or an environment variable. */
  agentKey: string;
  /** The Mattermost channel whose pinned policy governs this gateway's tool calls. */
  channelId: string;
  teamId?: string;
  /** The policy hash the operator pinned: tools are classified by this WPC and no other. */
  policyHash: string;
  /** Who a job is for when the call did not come from a Mattermost user. */
  requesterId?: string;
  /** How long a gated call waits for people to decide before it is blocked. */
  approvalTimeoutMs: number;
  /** How long after a call was let run the host has to report its outcome. */
  resultTimeoutMs: number;
}

export type ConfigResult = { ok: true; config: GateConfig } | { ok: false; problems: string[] };

export const DEFAULT_AGENT_KEY_ENV = 'CLAW_APPROVALS_AGENT_KEY';
export const DEFAULT_APPROVAL_TIMEOUT_SECONDS = 600;
export const DEFAULT_RESULT_TIMEOUT_SECONDS = 900;
/** OpenClaw's operator ceiling for a hook budget (`hooks.timeouts.*`) is 600 000 ms. */
export const MAX_APPROVAL_TIMEOUT_SECONDS = 3600;

const MM_ID = /^[a-z0-9]{26}$/;
const POLICY_HASH = /^[A-Za-z0-9_-]{43}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
// As the server reads `Authorization: Bearer <key>`.
const AGENT_KEY = /^[\x21-\x7e]{1,512}$/;
const KNOWN = new Set([
  'serverUrl',
  'agentKeyFile',
  'agentKeyEnv',
  'channelId',
  'teamId',
  'policyHash',
  'requesterId',
  'approvalTimeoutSeconds',
  'resultTimeoutSeconds',
]);

export interface ConfigSources {
  env: Readonly<Record<string, string | undefined>>;
  readFile?: (path: string) => string;
}

function seconds(raw: unknown, name: string, fallback: number, max: number, problems: string[]): number {
  if (raw === undefined) return fallback * 1000;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 1 || raw > max) {
    problems.push(`${name} must be a whole number of seconds from 1 to ${max}`);
    return fallback * 1000;
  }
  return raw * 1000;
}

/**
 * Checks the plugin's configuration. Every problem is named (values never: one is a
 * credential). A configuration with problems gates nothing and lets nothing through: the
 * plugin then blocks every tool call with these problems as the reason.
 */
export function parseConfig(raw: unknown, sources: ConfigSources): ConfigResult {
  const problems: string[] = [];
  const c = (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw : {}) as Record<
    string,
    unknown
  >;
  if (raw === undefined || raw === null) problems.push('the plugin has no configuration');
  for (const key of Object.keys(c)) if (!KNOWN.has(key)) problems.push(`unknown setting ${key.slice(0, 64)}`);

  let serverUrl = '';
  try {
    const url = new URL(String(c.serverUrl ?? ''));
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('scheme');
    if (url.username || url.password || url.search || url.hash) throw new TypeError('extras');
    serverUrl = url.href.replace(/\/+$/, '');
  } catch {
    problems.push('serverUrl must be an http(s) URL without credentials, query or fragment');
  }

  let agentKey = '';
  const before = problems.length;
  if (c.agentKeyFile !== undefined && c.agentKeyEnv !== undefined) {
    problems.push('set agentKeyFile or agentKeyEnv, not both');
  } else if (c.agentKeyFile !== undefined) {
    if (typeof c.agentKeyFile !== 'string' || c.agentKeyFile === '') {
      problems.push('agentKeyFile must be a file path');
    } else {
      try {
        agentKey = (sources.readFile ?? ((p) => readFileSync(p, 'utf8')))(c.agentKeyFile).trim();
      } catch {
        problems.push('agentKeyFile cannot be read');
      }
    }
  } else {
    const name = c.agentKeyEnv ?? DEFAULT_AGENT_KEY_ENV;
    if (typeof name !== 'string' || !ENV_NAME.test(name))
      problems.push('agentKeyEnv must name an environment variable');
    else agentKey = (sources.env[name] ?? '').trim();
  }
  if (agentKey === '' && problems.length === before) {
    problems.push(
      c.agentKeyFile !== undefined
        ? 'agentKeyFile is empty'
        : `the agent key is missing: set ${typeof c.agentKeyEnv === 'string' ? c.agentKeyEnv : DEFAULT_AGENT_KEY_ENV} or agentKeyFile`,
    );
  } else if (agentKey !== '' && !AGENT_KEY.test(agentKey)) {
    problems.push('the agent key must be 1–512 printable ASCII characters without spaces');
  }

  if (typeof c.channelId !== 'string' || !MM_ID.test(c.channelId))
    problems.push('channelId must be a Mattermost channel id (26 characters a-z, 0-9)');
  if (c.teamId !== undefined && (typeof c.teamId !== 'string' || !MM_ID.test(c.teamId)))
    problems.push('teamId must be a Mattermost team id (26 characters a-z, 0-9)');
  if (typeof c.policyHash !== 'string' || !POLICY_HASH.test(c.policyHash))
    problems.push('policyHash must be a policy_hash_b64u (43 base64url characters)');
  if (c.requesterId !== undefined && (typeof c.requesterId !== 'string' || !MM_ID.test(c.requesterId)))
    problems.push('requesterId must be a Mattermost user id (26 characters a-z, 0-9)');
  const approvalTimeoutMs = seconds(
    c.approvalTimeoutSeconds,
    'approvalTimeoutSeconds',
    DEFAULT_APPROVAL_TIMEOUT_SECONDS,
    MAX_APPROVAL_TIMEOUT_SECONDS,
    problems,
  );
  const resultTimeoutMs = seconds(
    c.resultTimeoutSeconds,
    'resultTimeoutSeconds',
    DEFAULT_RESULT_TIMEOUT_SECONDS,
    86_400,
    problems,
  );

  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    config: {
      serverUrl,
      agentKey,
      channelId: c.channelId as string,
      ...(c.teamId === undefined ? {} : { teamId: c.teamId as string }),
      policyHash: c.policyHash as string,
      ...(c.requesterId === undefined ? {} : { requesterId: c.requesterId as string }),
      approvalTimeoutMs,
      resultTimeoutMs,
    },
  };
}
