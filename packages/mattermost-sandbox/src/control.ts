import type { FaultSpec } from './faults.js';
import type { Exchange } from './rest/http.js';
import type { Sandbox } from './sandbox.js';

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function need(value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw new ControlError(400, `${name} is required`);
  return value;
}

/** `user_id`, or `username` looked up. */
function actor(sandbox: Sandbox, body: Record<string, unknown>): string {
  const id = str(body.user_id);
  if (id) return id;
  const username = need(str(body.username), 'username or user_id');
  const user = sandbox.userByUsername(username);
  if (!user) throw new ControlError(404, `no user ${username}`);
  return user.id;
}

/**
 * A small unauthenticated control API under /sandbox/v1 for people and scripts (the demo's
 * `--keep` mode). It calls the same methods as the programmatic API.
 */
export async function handleControl(ex: Exchange, sandbox: Sandbox): Promise<void> {
  try {
    const path = ex.path.replace(/^\/sandbox\/v1/, '');
    const body = ex.method === 'GET' || ex.method === 'DELETE' ? {} : await ex.json('body');
    if (!isRecord(body)) throw new ControlError(400, 'body must be a JSON object');
    const m = (method: string, pattern: RegExp): RegExpExecArray | null =>
      ex.method === method ? pattern.exec(path) : null;
    let match: RegExpExecArray | null;

    if (m('GET', /^\/state$/)) {
      ex.sendJson(200, sandbox.describe());
    } else if (m('POST', /^\/teams$/)) {
      ex.sendJson(
        201,
        sandbox.createTeam({ name: need(str(body.name), 'name'), display_name: str(body.display_name) }),
      );
    } else if (m('POST', /^\/users$/)) {
      ex.sendJson(
        201,
        sandbox.createUser({
          username: need(str(body.username), 'username'),
          is_bot: body.is_bot === true,
          roles: str(body.roles),
        }),
      );
    } else if (m('POST', /^\/channels$/)) {
      const type = str(body.type);
      ex.sendJson(
        201,
        sandbox.createChannel({
          team_id: need(str(body.team_id), 'team_id'),
          name: need(str(body.name), 'name'),
          display_name: str(body.display_name),
          type: type === 'P' ? 'P' : 'O',
        }),
      );
    } else if ((match = m('POST', /^\/channels\/([a-z0-9]{26})\/members$/))) {
      sandbox.addChannelMember(match[1]!, actor(sandbox, body));
      ex.sendJson(200, { status: 'OK' });
    } else if ((match = m('DELETE', /^\/channels\/([a-z0-9]{26})\/members\/([a-z0-9]{26})$/))) {
      sandbox.removeChannelMember(match[1]!, match[2]!);
      ex.sendJson(200, { status: 'OK' });
    } else if (m('POST', /^\/groups$/)) {
      const id = str(body.id);
      ex.sendJson(
        201,
        sandbox.createGroup({
          ...(id ? { id } : {}),
          name: need(str(body.name), 'name'),
          display_name: str(body.display_name),
        }),
      );
    } else if ((match = m('POST', /^\/groups\/([a-z0-9]{26})\/members$/))) {
      sandbox.addGroupMembers(match[1]!, [actor(sandbox, body)]);
      ex.sendJson(200, { status: 'OK' });
    } else if ((match = m('DELETE', /^\/groups\/([a-z0-9]{26})\/members\/([a-z0-9]{26})$/))) {
      sandbox.removeGroupMember(match[1]!, match[2]!);
      ex.sendJson(200, { status: 'OK' });
    } else if ((match = m('GET', /^\/channels\/([a-z0-9]{26})\/posts$/))) {
      ex.sendJson(
        200,
        sandbox.postsIn(match[1]!, { includeDeleted: ex.query('include_deleted') === 'true' }),
      );
    } else if (m('POST', /^\/posts$/)) {
      const rootId = str(body.root_id);
      ex.sendJson(
        201,
        sandbox.createPost(actor(sandbox, body), {
          channel_id: need(str(body.channel_id), 'channel_id'),
          message: str(body.message) ?? '',
          ...(rootId ? { root_id: rootId } : {}),
          ...(isRecord(body.props) ? { props: body.props } : {}),
        }),
      );
    } else if ((match = m('PUT', /^\/posts\/([a-z0-9]{26})$/))) {
      ex.sendJson(200, sandbox.editPost(actor(sandbox, body), match[1]!, str(body.message) ?? ''));
    } else if ((match = m('DELETE', /^\/posts\/([a-z0-9]{26})$/))) {
      const username = ex.query('username');
      const userId = ex.query('user_id') || (username ? actor(sandbox, { username }) : '');
      sandbox.deletePost(need(userId, 'user_id or username'), match[1]!);
      ex.sendJson(200, { status: 'OK' });
    } else if (m('POST', /^\/faults$/)) {
      const status = body.status;
      if (status !== 429 && status !== 500 && status !== 502 && status !== 503) {
        throw new ControlError(400, 'status must be 429, 500, 502 or 503');
      }
      const fault: FaultSpec = { status };
      if (typeof body.times === 'number') fault.times = body.times;
      if (typeof body.forMs === 'number') fault.forMs = body.forMs;
      if (typeof body.method === 'string') fault.method = body.method;
      if (typeof body.pathPrefix === 'string') fault.pathPrefix = body.pathPrefix;
      if (typeof body.retryAfterSeconds === 'number') fault.retryAfterSeconds = body.retryAfterSeconds;
      sandbox.injectFault(fault);
      ex.sendJson(201, { status: 'OK' });
    } else if (m('DELETE', /^\/faults$/)) {
      sandbox.clearFaults();
      ex.sendJson(200, { status: 'OK' });
    } else if (m('POST', /^\/drop-connections$/)) {
      const userId = str(body.user_id) ?? (str(body.username) ? actor(sandbox, body) : undefined);
      sandbox.dropConnections(userId ? { userId } : {});
      ex.sendJson(200, { status: 'OK' });
    } else if (m('POST', /^\/restart$/)) {
      await sandbox.restart();
      ex.sendJson(200, { status: 'OK' });
    } else {
      throw new ControlError(404, `no control route ${ex.method} ${ex.path}`);
    }
  } catch (err) {
    if (err instanceof ControlError) {
      ex.sendJson(err.status, { error: err.message });
      return;
    }
    const status = (err as { statusCode?: number }).statusCode ?? 400;
    ex.sendJson(status, { error: err instanceof Error ? err.message : String(err) });
  }
}
