import { appError, invalidParam, permissionError } from '../app-error.js';
import type { CreatePostInput, PostPatch, SandboxApp } from '../app.js';
import { isValidId } from '../ids.js';
import { postJson, postListJson } from '../serialize.js';
import type { PostRecord } from '../store.js';
import type { Exchange } from './http.js';
import { PER_PAGE_MAXIMUM } from './http.js';
import { requireId, route, type Route } from './route.js';

/** getPostsSince: at most this many modified posts per answer (sqlstore GetPostsSince). */
const SINCE_LIMIT = 1000;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);
const byCreateDesc = (rows: PostRecord[]): PostRecord[] =>
  rows
    .map((post, index) => ({ post, index }))
    .sort((a, b) => b.post.createAt - a.post.createAt || b.index - a.index)
    .map((e) => e.post);

async function createPost(ex: Exchange, app: SandboxApp): Promise<void> {
  const body = await ex.json('post');
  if (!isRecord(body)) throw invalidParam('post');
  const input: CreatePostInput = {
    channel_id: typeof body.channel_id === 'string' ? body.channel_id : '',
    message: typeof body.message === 'string' ? body.message : '',
    ...(typeof body.root_id === 'string' ? { root_id: body.root_id } : {}),
    ...(isRecord(body.props) ? { props: body.props } : {}),
    ...(typeof body.pending_post_id === 'string' ? { pending_post_id: body.pending_post_id } : {}),
    ...(typeof body.type === 'string' ? { type: body.type } : {}),
    ...(Array.isArray(body.file_ids) ? { file_ids: body.file_ids.filter((f) => typeof f === 'string') } : {}),
    ...(typeof body.create_at === 'number' ? { create_at: body.create_at } : {}),
  };
  const setOnline = ex.query('set_online') !== 'false';
  const { post } = app.createPostAsUser(ex.userId, input, setOnline);
  ex.sendJson(201, post);
}

async function createEphemeralPost(ex: Exchange, app: SandboxApp): Promise<void> {
  const body = await ex.json('body');
  ex.sendJson(201, app.createEphemeralPost(ex.userId, body));
}

/** GetPostIfAuthorized: a post you cannot read is a 403, a missing one a 404. */
function readablePost(ex: Exchange, app: SandboxApp, includeDeleted = false): PostRecord {
  const id = requireId(ex, 'post_id');
  const post = app.post(id);
  if (!post || post.originalId !== '' || (post.deleteAt !== 0 && !includeDeleted)) {
    throw appError('app.post.get.app_error', 404);
  }
  const channel = app.store.channels.get(post.channelId);
  if (!channel || !app.store.canReadChannel(ex.userId, channel)) throw permissionError();
  return post;
}

function getPost(ex: Exchange, app: SandboxApp): void {
  const includeDeleted = ex.query('include_deleted') === 'true';
  if (includeDeleted && !app.store.isSystemAdmin(ex.userId)) throw permissionError();
  ex.sendJson(200, postJson(app.store, readablePost(ex, app, includeDeleted), { metadata: true }));
}

async function patchPost(ex: Exchange, app: SandboxApp): Promise<void> {
  const id = requireId(ex, 'post_id');
  const body = await ex.json('post');
  if (!isRecord(body)) throw invalidParam('post');
  const patch: PostPatch = {
    ...(typeof body.message === 'string' ? { message: body.message } : {}),
    ...(isRecord(body.props) ? { props: body.props } : {}),
    ...(typeof body.is_pinned === 'boolean' ? { is_pinned: body.is_pinned } : {}),
  };
  ex.sendJson(200, app.patchPost(ex.userId, id, patch));
}

function deletePost(ex: Exchange, app: SandboxApp): void {
  app.deletePost(ex.userId, requireId(ex, 'post_id'));
  ex.sendJson(200, { status: 'OK' });
}

/** GET /posts/{id}/thread (non-collapsed): the post first, then the rest of its thread. */
function getPostThread(ex: Exchange, app: SandboxApp): void {
  const id = requireId(ex, 'post_id');
  let perPage = 0;
  if (ex.query('perPage') !== '') {
    perPage = Number(ex.query('perPage'));
    if (!Number.isInteger(perPage) || perPage > PER_PAGE_MAXIMUM) throw invalidParam('perPage');
  }
  let fromCreateAt = 0;
  if (ex.query('fromCreateAt') !== '') {
    fromCreateAt = Number(ex.query('fromCreateAt'));
    if (!Number.isInteger(fromCreateAt)) throw invalidParam('fromCreateAt');
  }
  const fromPost = ex.query('fromPost');
  if (fromPost !== '' && fromCreateAt === 0)
    throw invalidParam('if fromPost is set, then fromCreateAt must also be set');
  const direction = ex.query('direction');
  if (direction !== '' && direction !== 'up' && direction !== 'down') throw invalidParam('direction');

  const post = app.post(id);
  if (!post || post.deleteAt !== 0) throw appError('app.post.get.app_error', 404);
  const order: PostRecord[] = [post];
  let hasNext = false;
  if (ex.query('skipFetchThreads') !== 'true') {
    const rootId = post.rootId === '' ? post.id : post.rootId;
    let rows = (app.store.channelPosts.get(post.channelId) ?? []).filter(
      (p) => p.deleteAt === 0 && (p.id === rootId || p.rootId === rootId),
    );
    if (direction !== '') {
      const sign = direction === 'up' ? -1 : 1;
      rows = [...rows].sort(
        (a, b) => sign * (a.createAt - b.createAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
      );
    }
    if (fromCreateAt !== 0) {
      rows =
        direction === 'down'
          ? rows.filter(
              (p) =>
                p.createAt > fromCreateAt ||
                (fromPost !== '' && p.createAt === fromCreateAt && p.id > fromPost),
            )
          : rows.filter(
              (p) =>
                p.createAt < fromCreateAt ||
                (fromPost !== '' && p.createAt === fromCreateAt && p.id < fromPost),
            );
    }
    if (perPage !== 0) {
      hasNext = rows.length > perPage;
      rows = rows.slice(0, perPage);
    }
    for (const row of rows) if (row.id !== post.id) order.push(row);
  }
  const channel = app.store.channels.get(post.channelId);
  if (!channel || !app.store.canReadChannel(ex.userId, channel)) throw permissionError();
  ex.sendJson(200, postListJson(app.store, order, [], { next: '', prev: '', hasNext }));
}

/** getPostIdAroundTime: the nearest live post strictly after (or before) a create time. */
function postIdAround(rows: PostRecord[], time: number, before: boolean): string {
  const live = rows.filter((p) => p.deleteAt === 0 && (before ? p.createAt < time : p.createAt > time));
  if (live.length === 0) return '';
  const pick = live.reduce((best, p) =>
    before ? (p.createAt > best.createAt ? p : best) : p.createAt < best.createAt ? p : best,
  );
  return pick.id;
}

/** GET /channels/{channel_id}/posts: `since`, `before`/`after`, or a page, as api4 getPostsForChannel. */
function getPostsForChannel(ex: Exchange, app: SandboxApp): void {
  const channelId = requireId(ex, 'channel_id');
  const after = ex.query('after');
  if (after !== '' && !isValidId(after)) throw invalidParam('after');
  const before = ex.query('before');
  if (before !== '' && !isValidId(before)) throw invalidParam('before');
  let since = 0;
  if (ex.query('since') !== '') {
    since = Number(ex.query('since'));
    if (!/^-?\d+$/.test(ex.query('since'))) throw invalidParam('since');
  }
  const includeDeleted = ex.query('include_deleted') === 'true';
  if (includeDeleted && !app.store.isSystemAdmin(ex.userId)) throw permissionError();
  const channel = app.channelOrNotFound(channelId);
  if (!app.store.canReadChannel(ex.userId, channel)) throw permissionError();
  const skipFetchThreads = ex.query('skipFetchThreads') === 'true';
  const all = app.store.channelPosts.get(channelId) ?? [];

  if (since > 0) {
    // Every row modified after `since` — new, edited, deleted, and the copies edits leave
    // behind — at most 1000 (the sandbox keeps the 1000 earliest modifications), newest first.
    const modified = all
      .map((post, index) => ({ post, index }))
      .filter((e) => e.post.updateAt > since)
      .sort((a, b) => a.post.updateAt - b.post.updateAt || a.index - b.index)
      .slice(0, SINCE_LIMIT)
      .map((e) => e.post);
    const inList = new Set(modified.map((p) => p.id));
    const roots = [...new Set(modified.map((p) => p.rootId).filter((id) => id !== '' && !inList.has(id)))]
      .map((id) => app.store.posts.get(id))
      .filter((p) => p !== undefined);
    ex.sendJson(200, postListJson(app.store, byCreateDesc(modified), roots, { next: '', prev: '' }));
    return;
  }

  const { page, perPage } = ex.paging();
  const visible = all.filter((p) => p.originalId === '' && (includeDeleted || p.deleteAt === 0));
  let candidates = byCreateDesc(visible);
  if (after !== '' || before !== '') {
    const anchor = app.store.posts.get(after || before);
    const time = anchor?.createAt ?? 0;
    candidates =
      after !== ''
        ? [...visible].filter((p) => p.createAt > time).sort((a, b) => a.createAt - b.createAt)
        : candidates.filter((p) => p.createAt < time);
  }
  let order = candidates.slice(page * perPage, page * perPage + perPage);
  if (after !== '') order = byCreateDesc(order);
  const inOrder = new Set(order.map((p) => p.id));
  const rootIds = new Set(order.map((p) => p.rootId).filter((id) => id !== ''));
  const extra = visible.filter(
    (p) => !inOrder.has(p.id) && (rootIds.has(p.id) || (!skipFetchThreads && rootIds.has(p.rootId))),
  );
  let next = '';
  let prev = '';
  if (after !== '' && page === 0) prev = after;
  if (before !== '' && page === 0) next = before;
  const first = order[0];
  const last = order.at(-1);
  if (!(before !== '' && page === 0) && !(after !== '' && order.length < perPage) && first) {
    next = postIdAround(visible, first.createAt, false);
  }
  if (!(after !== '' && page === 0) && !(before !== '' && order.length < perPage) && last) {
    prev = postIdAround(visible, last.createAt, true);
  }
  ex.sendJson(200, postListJson(app.store, order, extra, { next, prev }));
}

function getReactions(ex: Exchange, app: SandboxApp): void {
  const id = requireId(ex, 'post_id');
  const post = app.post(id);
  if (!post || !app.store.hasChannelPermission(ex.userId, post.channelId)) throw permissionError();
  ex.sendJson(
    200,
    (app.store.reactions.get(id) ?? []).filter((r) => r.delete_at === 0),
  );
}

async function saveReaction(ex: Exchange, app: SandboxApp): Promise<void> {
  const body = await ex.json('reaction');
  ex.sendJson(200, app.saveReaction(ex.userId, isRecord(body) ? body : {}));
}

export const postRoutes: Route[] = [
  route('POST', '/api/v4/posts', createPost),
  route('POST', '/api/v4/posts/ephemeral', createEphemeralPost),
  route('GET', '/api/v4/posts/{post_id}', getPost),
  route('DELETE', '/api/v4/posts/{post_id}', deletePost),
  route('PUT', '/api/v4/posts/{post_id}/patch', patchPost),
  route('GET', '/api/v4/posts/{post_id}/thread', getPostThread),
  route('GET', '/api/v4/posts/{post_id}/reactions', getReactions),
  route('GET', '/api/v4/channels/{channel_id}/posts', getPostsForChannel),
  route('POST', '/api/v4/reactions', saveReaction),
];
