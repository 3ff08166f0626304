import type { Sandbox } from './sandbox.js';

/**
 * The workspace the shipped policies describe (`policies/mattermost-agent-prod.json` and
 * `policies/groups.json`): its team, its ops channel and the people of its groups, with the
 * same ids, plus a bot account. Used by the demo and the bench.
 */
export const OPS_WORKSPACE = {
  team: '9d3bnaiagttz34jro16b6815ia',
  channel: '7sczj5rye83784zqootng6sb48',
  executor: 'agent:ops-mattermost-1',
  people: {
    alice: 'fn5tnqd3rq1k6a6rjes4egzp8n', // ops-oncall
    bruno: 'f9g6ejxi8rtawyzhfgrt6tynuc', // ops-oncall, and a requester
    chioma: 'e8t3kac4ppqwfhe17uzapx175t', // sec-reviewers, security
    dmitri: '7fsnwmidynb3dhd94dh9i8rmtn', // sec-reviewers
    erin: 'qbkw593ocga7d4hr5d1fmk36ru', // security
    farid: 'yxnxux4daa14kiqo56aekuhd6x', // requester
    grace: 'dse6eipg5ijztcxx8bhb384g5d', // requester
  },
} as const;

export type OpsPerson = keyof typeof OPS_WORKSPACE.people | 'outsider';

export interface SeededWorkspace {
  botUserId: string;
  botToken: string;
  botUsername: string;
  ids: Record<OpsPerson, string>;
  tokens: Record<OpsPerson, string>;
  channel: string;
  team: string;
}

export function seedOpsWorkspace(sandbox: Sandbox, botUsername = 'clawbot'): SeededWorkspace {
  const team = sandbox.createTeam({ id: OPS_WORKSPACE.team, name: 'ops', display_name: 'Ops' }).id;
  const channel = sandbox.createChannel({
    id: OPS_WORKSPACE.channel,
    team_id: team,
    name: 'ops-requests',
    display_name: 'Ops requests',
    type: 'O',
  }).id;
  const bot = sandbox.createUser({ username: botUsername, is_bot: true });
  sandbox.addChannelMember(channel, bot.user.id);
  const ids = {} as Record<OpsPerson, string>;
  const tokens = {} as Record<OpsPerson, string>;
  const people: [OpsPerson, string | undefined][] = [
    ...(Object.entries(OPS_WORKSPACE.people) as [OpsPerson, string][]),
    ['outsider', undefined],
  ];
  for (const [name, id] of people) {
    const u = sandbox.createUser({ username: name, ...(id ? { id } : {}) });
    ids[name] = u.user.id;
    tokens[name] = u.token;
    sandbox.addChannelMember(channel, u.user.id);
  }
  return { botUserId: bot.user.id, botToken: bot.token, botUsername, ids, tokens, channel, team };
}
