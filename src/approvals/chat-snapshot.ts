import { ChatCache, type FactsMark, type WatchedFact } from '../chat/chat-cache.js';
import type { ChatPost, ChatUser } from '../ports/chat.js';
import type { EngineContext } from '../jobs/context.js';
import type { GroupMembership } from './directory.js';

/**
 * What Mattermost said, asked just before a deciding transaction takes the job row lock: no
 * network call is made while that lock is held. The transaction evaluates SPEC section 2 on
 * these answers; when it needs one the snapshot lacks (an approval arrived meanwhile), it throws
 * `SnapshotMiss`, rolls back and starts again from a new snapshot.
 *
 * Every question is asked, all at once, and every answer kept, failures included: a failure is
 * thrown where the answer is used, exactly where asking then would have thrown. A decision that
 * never needs an answer is not failed by it (fail closed only on what the decision rests on).
 *
 * The answers are as old as the moment they were asked, not the moment quorum is evaluated:
 * with the job locked, `assertCurrent` asks the chat cache whether any event it heard since
 * (an edit, a delete, a removal, a deactivation) or a break in its stream may have changed one
 * of them, and if so throws `SnapshotMiss`, so the decision starts again on new answers.
 */
export interface FactsNeeded {
  /** Whose memberships, in which candidate groups. */
  memberships: { userId: string; groups: readonly string[] }[];
  /** Whose accounts (active or not). */
  accounts: Iterable<string>;
  /** Which posts to re-read. */
  posts: Iterable<string>;
}

/**
 * The transaction needed an answer the snapshot does not have, or one Mattermost has said
 * changed since it was asked: roll back, ask again.
 */
export class SnapshotMiss extends Error {
  /**
   * @param what the answer missing, or the answers that changed
   * @param changed true: an answer may have changed since it was asked; false: the decision needs
   *   an answer that was not asked (the job moved on meanwhile, e.g. someone else approved)
   */
  constructor(
    what: string,
    readonly changed = false,
  ) {
    super(
      changed
        ? `${what} may have changed in Mattermost since it was asked`
        : `the decision needs ${what}, which was not asked before the job was locked`,
    );
    this.name = 'SnapshotMiss';
  }
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

async function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

function answer<T>(s: Settled<T> | undefined, what: string): T {
  if (s === undefined) throw new SnapshotMiss(what);
  if (!s.ok) throw s.error;
  return s.value;
}

const membershipKey = (userId: string, groups: readonly string[]) =>
  JSON.stringify([userId, [...new Set(groups)].sort()]);

export class ChatSnapshot {
  private constructor(
    /** Absent: no chat connection (API only): there is no account or post to ask about. */
    private readonly chat: boolean,
    private readonly memberships: Map<string, Settled<GroupMembership[]>>,
    private readonly accounts: Map<string, Settled<ChatUser | null>>,
    private readonly posts: Map<string, Settled<ChatPost | null>>,
    /**
     * The cache the answers came through, what it had heard when they were asked, and the bot's
     * own user id then (a new identity since is a change `assertCurrent` reports).
     */
    private readonly watch: { cache: ChatCache; mark: FactsMark; botUserId: string | null } | null,
  ) {}

  /** Asks everything `needs` names, concurrently. Never throws: failures are kept as answers. */
  static async gather(ctx: EngineContext, needs: FactsNeeded): Promise<ChatSnapshot> {
    const chat = ctx.chat;
    // Marked before anything is asked: an event heard while an answer is on its way counts too.
    const cache = chat?.stream instanceof ChatCache ? chat.stream : null;
    const watch = cache ? { cache, mark: cache.mark(), botUserId: cache.botUserId } : null;
    const memberships = new Map<string, Promise<Settled<GroupMembership[]>>>();
    for (const m of needs.memberships) {
      const key = membershipKey(m.userId, m.groups);
      if (!memberships.has(key))
        memberships.set(key, settle(ctx.directory.membershipsOf(m.userId, m.groups)));
    }
    const accounts = new Map<string, Promise<Settled<ChatUser | null>>>();
    const posts = new Map<string, Promise<Settled<ChatPost | null>>>();
    if (chat) {
      for (const id of needs.accounts) if (!accounts.has(id)) accounts.set(id, settle(chat.freshUser(id)));
      for (const id of needs.posts) if (!posts.has(id)) posts.set(id, settle(chat.post(id)));
    }
    const resolved = async <T>(m: Map<string, Promise<T>>) =>
      new Map(await Promise.all([...m].map(async ([k, p]) => [k, await p] as const)));
    const [ms, as, ps] = await Promise.all([resolved(memberships), resolved(accounts), resolved(posts)]);
    return new ChatSnapshot(chat !== undefined, ms, as, ps, watch);
  }

  /** A snapshot that answers nothing: for work that needs no chat answer (auto steps). */
  static empty(ctx: EngineContext): ChatSnapshot {
    return new ChatSnapshot(ctx.chat !== undefined, new Map(), new Map(), new Map(), null);
  }

  /**
   * Call with the job locked: throws `SnapshotMiss` if the chat cache heard, since the answers
   * were asked, anything that may have changed one of them, or its stream broke. Without a cache
   * that hears Mattermost's events (API only, or a chat port without a stream) there is nothing
   * to hear, and the answers stand as asked.
   */
  assertCurrent(): void {
    if (!this.watch) return;
    const facts: WatchedFact[] = [];
    for (const key of this.memberships.keys()) {
      const [userId] = JSON.parse(key) as [string, string[]];
      facts.push({ kind: 'memberships', userId });
    }
    for (const userId of this.accounts.keys()) facts.push({ kind: 'account', userId });
    for (const [postId, s] of this.posts) {
      const post = s.ok ? s.value : null;
      facts.push({
        kind: 'post',
        postId,
        channelId: post ? post.channel_id : null,
        rootId: post ? post.root_id : null,
      });
    }
    if (facts.length > 0 && this.watch.cache.changedSince(this.watch.mark, facts))
      throw new SnapshotMiss("Mattermost's answers", true);
  }

  /** How `userId` was found in each of `groups`, as the directory answered. */
  membershipsOf(userId: string, groups: readonly string[]): GroupMembership[] {
    return answer(this.memberships.get(membershipKey(userId, groups)), `the memberships of ${userId}`);
  }

  /** The account as Mattermost had it; undefined without a chat connection (nothing to ask). */
  account(userId: string): ChatUser | null | undefined {
    if (!this.chat) return undefined;
    return answer(this.accounts.get(userId), `the account of ${userId}`);
  }

  /**
   * Whether Mattermost said `postId` is a root post the bot itself wrote in `channelId`, not
   * deleted, whose prop `prop` is `value`. Props are anyone's to set: only the author and the
   * channel, as Mattermost answers them, make the post the bot's. False when the bot's own id
   * is not known (no chat connection, or a chat port that does not say who it is).
   */
  isOwnRootPost(postId: string, channelId: string, prop: { name: string; value: string }): boolean {
    const botUserId = this.watch?.botUserId ?? null;
    if (!this.chat || botUserId === null) return false;
    const post = this.post(postId);
    return (
      !!post &&
      post.id === postId &&
      post.delete_at === 0 &&
      post.user_id === botUserId &&
      post.channel_id === channelId &&
      post.root_id === '' &&
      post.props[prop.name] === prop.value
    );
  }

  /** The post as Mattermost had it (null: deleted); undefined without a chat connection. */
  post(postId: string): ChatPost | null | undefined {
    if (!this.chat) return undefined;
    return answer(this.posts.get(postId), `post ${postId}`);
  }
}
