import type { Config } from '../../config.js';
import { type Finding, ok, problem } from './findings.js';
import { type Fetch, httpGet, type HttpAnswer, serverMessage } from './http-get.js';
import { describeNetworkError } from './network-error.js';

/** The bot's account, once the URL and the token have passed. */
export interface MattermostSession {
  /** The server's address without any credentials, for messages. */
  shown: string;
  bot: { id: string; username: string };
  /** GET a path under `/api/v4`, as the bot. */
  get(path: string): Promise<HttpAnswer>;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const API_SUFFIX = /\/api\/v4\/?$/;

/** `https://chat.example.com/` without user info, query or fragment. */
function shownUrl(url: URL): string {
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

/**
 * The Mattermost URL, the server behind it, and the token: does it answer as Mattermost, is the
 * token accepted, and is it a bot's. The session is null when nothing further can be asked.
 */
export async function checkMattermostAccount(
  config: Config,
  fetchFn?: Fetch,
): Promise<{ findings: Finding[]; session: MattermostSession | null }> {
  const findings: Finding[] = [];
  const done = (f: Finding) => ({ findings: [...findings, f], session: null });
  if (!config.mattermost) {
    return done(
      problem(
        'mattermost.url',
        'MATTERMOST_URL is not set: the server runs API-only, and nobody can request or approve in chat',
        "set MATTERMOST_URL to the server's address (https://chat.example.com) and MATTERMOST_TOKEN to a bot account's token",
      ),
    );
  }
  const url = new URL(config.mattermost.url);
  const shown = shownUrl(url);
  if (API_SUFFIX.test(url.pathname)) {
    return done(
      problem(
        'mattermost.url',
        `MATTERMOST_URL ends in /api/v4 (${shown})`,
        `set MATTERMOST_URL=${shown.replace(API_SUFFIX, '')}: the client adds /api/v4 itself`,
      ),
    );
  }
  if (url.username || url.password) {
    findings.push(
      problem(
        'mattermost.url',
        'MATTERMOST_URL carries a user name or password',
        'remove them: the bot signs in with MATTERMOST_TOKEN only',
      ),
    );
  }
  const base = `${url.origin}${url.pathname.replace(/\/+$/, '')}/api/v4`;
  const token = config.mattermost.token;
  const get = (path: string) =>
    httpGet(new URL(`${base}${path}`), { token, ...(fetchFn ? { fetch: fetchFn } : {}) });

  const ping = await httpGet(new URL(`${base}/system/ping`), fetchFn ? { fetch: fetchFn } : {});
  if (!ping.ok) {
    const why = describeNetworkError(ping.error, url);
    return done(problem('mattermost.server', `cannot reach Mattermost at ${shown}: ${why.message}`, why.fix));
  }
  if (ping.status !== 200 || !isObject(ping.body) || ping.body.status !== 'OK') {
    return done(
      problem(
        'mattermost.server',
        `${shown} does not answer like Mattermost (GET /api/v4/system/ping answered ${ping.status})`,
        'set MATTERMOST_URL to the address you open Mattermost at in a browser',
      ),
    );
  }
  findings.push(ok('mattermost.server', `${shown} answers as Mattermost`));

  const me = await get('/users/me');
  if (!me.ok) {
    const why = describeNetworkError(me.error, url);
    return done(
      problem('mattermost.token', `cannot ask Mattermost who the token is: ${why.message}`, why.fix),
    );
  }
  if (me.status === 401) {
    return done(
      problem(
        'mattermost.token',
        `Mattermost refuses MATTERMOST_TOKEN (401${serverMessage(me.body) ? `: ${serverMessage(me.body)}` : ''})`,
        'create an access token for the bot account (System Console → Integrations → Bot Accounts → Create New Token) and set MATTERMOST_TOKEN to it',
      ),
    );
  }
  if (me.status !== 200 || !isObject(me.body) || typeof me.body.id !== 'string') {
    return done(
      problem(
        'mattermost.token',
        `GET /api/v4/users/me answered ${me.status}${serverMessage(me.body) ? `: ${serverMessage(me.body)}` : ''}`,
        'check MATTERMOST_URL and MATTERMOST_TOKEN',
      ),
    );
  }
  const bot = {
    id: me.body.id,
    username: typeof me.body.username === 'string' ? me.body.username : me.body.id,
  };
  findings.push(ok('mattermost.token', `Mattermost accepts MATTERMOST_TOKEN (user @${bot.username})`));
  findings.push(
    me.body.is_bot === true
      ? ok('mattermost.bot', `@${bot.username} is a bot account`)
      : problem(
          'mattermost.bot',
          `MATTERMOST_TOKEN belongs to @${bot.username}, a person's account, not a bot`,
          "create a bot account (System Console → Integrations → Bot Accounts) and use its token: a person's token acts as that person",
        ),
  );
  return { findings, session: { shown, bot, get } };
}

/** Is the bot a member of each team and channel the policies allow? */
export async function checkMemberships(
  session: MattermostSession,
  teams: readonly { id: string; shown: string }[],
  channels: readonly { id: string; shown: string }[],
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const bot = `@${session.bot.username}`;
  const mine = await session.get(`/users/${session.bot.id}/teams`);
  if (!mine.ok || mine.status !== 200 || !Array.isArray(mine.body)) {
    findings.push(
      problem(
        'mattermost.team',
        `could not list the teams of ${bot} (${mine.ok ? mine.status : 'Mattermost did not answer'})`,
        'run doctor again once Mattermost answers',
      ),
    );
  } else {
    const teamIds = new Set(
      mine.body.flatMap((t: unknown) => (isObject(t) && typeof t.id === 'string' ? [t.id] : [])),
    );
    for (const team of teams) {
      findings.push(
        teamIds.has(team.id)
          ? ok('mattermost.team', `${bot} is a member of team ${team.shown}`)
          : problem(
              'mattermost.team',
              `${bot} is not a member of team ${team.shown}`,
              `add it to the team (team menu → Add members → ${bot}, or mmctl team users add <team> ${session.bot.username})`,
            ),
      );
    }
  }
  for (const channel of channels)
    findings.push(await channelMembership(session, channel, 'mattermost.channel'));
  return findings;
}

/** The bot's membership of one channel: it must be in every channel it serves or reads members of. */
export async function channelMembership(
  session: MattermostSession,
  channel: { id: string; shown: string },
  check: string,
  why = 'it serves',
): Promise<Finding> {
  const bot = `@${session.bot.username}`;
  const answer = await session.get(`/channels/${channel.id}/members/${session.bot.id}`);
  if (!answer.ok)
    return problem(
      check,
      `could not ask whether ${bot} is in channel ${channel.shown}: Mattermost did not answer`,
      'run doctor again once Mattermost answers',
    );
  if (answer.status === 200) return ok(check, `${bot} is a member of channel ${channel.shown}`);
  return problem(
    check,
    `${bot} is not a member of channel ${channel.shown}, which ${why} (${answer.status})`,
    `in that channel, type /invite ${bot} (a private channel must invite it)`,
  );
}
