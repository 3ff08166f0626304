import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { client, events, Probe } from './helpers.js';
import { world, type World } from './world.js';

let w: World;

beforeEach(async () => {
  w = await world();
});

afterEach(async () => {
  await w.sandbox.close();
});

const me = (token: string): Promise<Response> =>
  fetch(`${w.sandbox.url}/api/v4/users/me`, { headers: { Authorization: `Bearer ${token}` } });

describe('injected faults', () => {
  it('answers 429 exactly like the rate limiter: plain text and throttled headers', async () => {
    w.sandbox.injectFault({ status: 429, retryAfterSeconds: 7 });
    const limited = await me(w.alice.token);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(limited.headers.get('x-ratelimit-limit')).toBe('101');
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(limited.headers.get('x-ratelimit-reset')).toBe('7');
    expect(limited.headers.get('retry-after')).toBe('7');
    expect(await limited.text()).toBe('limit exceeded\n');
    expect((await me(w.alice.token)).status).toBe(200);
    expect(w.sandbox.requestCount({ pathPrefix: '/api/v4/users/me' })).toBe(2);
    expect(w.sandbox.requestCount({ status: 429 })).toBe(1);
  });

  it('leaves Client4 with an empty message and no status: the caller must look at the response', async () => {
    w.sandbox.injectFault({ status: 429 });
    const err = await client(w.sandbox, w.alice.token)
      .getMe()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ message: '', status_code: undefined, server_error_id: undefined });
  });

  it('answers 5xx with the JSON error shape', async () => {
    w.sandbox.injectFault({ status: 503, method: 'POST', pathPrefix: '/api/v4/posts', times: 2 });
    const alice = client(w.sandbox, w.alice.token);
    expect(await alice.getMe()).toMatchObject({ id: w.alice.user.id });
    for (let i = 0; i < 2; i++) {
      await expect(alice.createPost({ channel_id: w.town.id, message: 'x' } as never)).rejects.toMatchObject({
        status_code: 503,
        server_error_id: 'api.context.server_busy.app_error',
      });
    }
    expect((await alice.createPost({ channel_id: w.town.id, message: 'x' } as never)).message).toBe('x');
    w.sandbox.injectFault({ status: 500, forMs: 60_000 });
    const res = await me(w.alice.token);
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({ status_code: 500, detailed_error: '' });
    expect((await me(w.alice.token)).status).toBe(500);
    w.sandbox.clearFaults();
    expect((await me(w.alice.token)).status).toBe(200);
  });

  it('never touches the WebSocket or the control API', async () => {
    w.sandbox.injectFault({ status: 502, forMs: 60_000 });
    const probe = await Probe.open(w.sandbox, { token: w.bob.token });
    expect(await probe.next()).toMatchObject({ event: 'hello' });
    const res = await fetch(`${w.sandbox.url}/sandbox/v1/posts`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'alice', channel_id: w.town.id, message: 'via control' }),
    });
    expect(res.status).toBe(201);
    expect(events(await probe.drain(), 'posted')).toHaveLength(1);
    probe.close();
  });
});

describe('close and listen', () => {
  it('refuses connections while closed and serves the same data on the same port afterwards', async () => {
    const { port, url } = w.sandbox;
    w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: 'kept' });
    await w.sandbox.close();
    const refused = await fetch(`${url}/api/v4/system/ping`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({ cause: { code: 'ECONNREFUSED' } });
    await w.sandbox.listen();
    expect(w.sandbox.port).toBe(port);
    const posts = await client(w.sandbox, w.alice.token).getPosts(w.town.id);
    expect(Object.values(posts.posts).map((p) => p.message)).toEqual(['kept']);
  });
});

describe('control API', () => {
  it('creates users and posts, lists posts and drops connections', async () => {
    const post = (path: string, body: unknown): Promise<Response> =>
      fetch(`${w.sandbox.url}/sandbox/v1${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    const created = (await (await post('/users', { username: 'carol' })).json()) as { user: { id: string } };
    expect((await post(`/channels/${w.town.id}/members`, { username: 'carol' })).status).toBe(200);
    const probe = await Probe.open(w.sandbox, { token: w.bob.token });
    await probe.next();
    expect((await post('/posts', { username: 'carol', channel_id: w.town.id, message: 'hi' })).status).toBe(
      201,
    );
    const listed = (await (
      await fetch(`${w.sandbox.url}/sandbox/v1/channels/${w.town.id}/posts`)
    ).json()) as {
      user_id: string;
    }[];
    expect(listed.map((p) => p.user_id)).toEqual([created.user.id]);
    expect((await post('/drop-connections', {})).status).toBe(200);
    await probe.closed;
    expect((await post('/posts', { username: 'nobody', channel_id: w.town.id, message: 'x' })).status).toBe(
      404,
    );
    expect(w.sandbox.requestCount()).toBe(0);
  });

  it('creates a group with a chosen id and manages its members, visible through REST', async () => {
    const post = (path: string, body: unknown): Promise<Response> =>
      fetch(`${w.sandbox.url}/sandbox/v1${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    const id = 'uibxf4oba4dbo6fisi3knuwnjy';
    const res = await post('/groups', { id, name: 'ops-oncall' });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { id: string }).id).toBe(id);
    expect((await post(`/groups/${id}/members`, { username: 'alice' })).status).toBe(200);
    const members = async () =>
      (await (
        await fetch(`${w.sandbox.url}/api/v4/users?in_group=${id}`, {
          headers: { Authorization: `Bearer ${w.bob.token}` },
        })
      ).json()) as { username: string }[];
    expect((await members()).map((u) => u.username)).toEqual(['alice']);
    const alice = w.sandbox.userByUsername('alice')!;
    const removed = await fetch(`${w.sandbox.url}/sandbox/v1/groups/${id}/members/${alice.id}`, {
      method: 'DELETE',
    });
    expect(removed.status).toBe(200);
    expect(await members()).toEqual([]);
  });
});
