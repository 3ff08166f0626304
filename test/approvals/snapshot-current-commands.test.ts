import type { KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { confirmRequester } from '../../src/approvals/confirm-requester.js';
import { DECIDE_ATTEMPTS } from '../../src/approvals/record-decision.js';
import { ChatCache } from '../../src/chat/chat-cache.js';
import type { Db } from '../../src/db/database.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { endJobByCommand } from '../../src/jobs/revoke-job.js';
import type { ChatFacts, ChatStreamEvent, ChatUser } from '../../src/ports/chat.js';
import { dialectName } from '../helpers/db.js';
import { agentJob, createTestEngine, opsJob, type TestEngine, U } from '../helpers/engine.js';

/**
 * REVOKE (and cancel) and the requester's CONFIRM ask Mattermost before they lock the job, like
 * APPROVE: an event heard while they wait for the lock (a removal from the security channel, a
 * deactivation) makes them ask again, and the new answer decides.
 */

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

const BOT = 'bot0000000000000000000000a';
/** The private ~security-response channel whose members are the `security` group (groups.json). */
const SECURITY_CHANNEL = '5xcnr99t1annwkxri4w1b9a75b';
/** In the security group only through that channel. */
const SAM = 'sam0000000000000000000000a';

const event = (name: string, data: Record<string, unknown>, channelId = ''): ChatStreamEvent => ({
  event: name,
  data,
  broadcast: { omit_users: null, user_id: '', channel_id: channelId, team_id: '' },
});

interface World {
  ctx: EngineContext;
  cache: ChatCache;
  /** Members of the security channel, as Mattermost answers. */
  security: Set<string>;
  /** Deactivated accounts, as Mattermost answers. */
  deactivated: Set<string>;
  /** How often each question was asked of Mattermost. */
  asked: Map<string, number>;
  /** Runs `hook` each time a deciding transaction is about to take the job lock. */
  beforeLock(hook: () => void): void;
}

async function world(): Promise<World> {
  const cache = new ChatCache({ freshMs: 30_000 });
  cache.setBotUserId(BOT);
  cache.streamConnected();
  const security = new Set<string>();
  const deactivated = new Set<string>();
  const asked = new Map<string, number>();
  const count = (k: string) => asked.set(k, (asked.get(k) ?? 0) + 1);
  const facts: ChatFacts = {
    stream: cache,
    post: () => Promise.resolve(null),
    freshUser: (id) =>
      cache.get(
        `user:${id}`,
        async (): Promise<ChatUser | null> => {
          count(`user:${id}`);
          return { id, username: id, is_bot: false, delete_at: deactivated.has(id) ? 5 : 0 };
        },
        () => ({ scope: { kind: 'account' } }),
      ),
  };
  e = await createTestEngine({
    facts,
    chat: {
      isGroupMember: () => Promise.resolve(false),
      isChannelMember: (userId, channelId) =>
        cache.get(
          ChatCache.channelKey(channelId, userId),
          async () => {
            count(`channel:${channelId}:${userId}`);
            return channelId === SECURITY_CHANNEL && security.has(userId);
          },
          () => ({ scope: { kind: 'channel', channelId } }),
        ),
    },
  });
  let hook: (() => void) | null = null;
  const plugin: KyselyPlugin = {
    transformQuery(args) {
      // The kill switch's share lock is taken just before the job row's.
      if (hook && JSON.stringify(args.node).includes('"kill_switch"')) hook();
      return args.node;
    },
    async transformResult(args) {
      return args.result;
    },
  };
  return {
    ctx: { ...e.ctx, db: e.ctx.db.withPlugin(plugin) as Db },
    cache,
    security,
    deactivated,
    asked,
    beforeLock: (h) => {
      hook = h;
    },
  };
}

const statusOf = (w: World, jobId: number) =>
  w.ctx.db.selectFrom('jobs').select('status').where('id', '=', jobId).executeTakeFirstOrThrow();

describe(`commands whose answers changed while they waited for the job lock (${dialectName})`, () => {
  it('a REVOKE by someone removed from the security channel in that window is refused', async () => {
    const w = await world();
    const job = await opsJob(w.ctx);
    w.security.add(SAM);
    let removals = 0;
    w.beforeLock(() => {
      if (removals++ > 0) return;
      w.security.delete(SAM);
      w.cache.streamEvent(event('user_removed', { user_id: SAM }, SECURITY_CHANNEL));
    });
    const o = await endJobByCommand(w.ctx, {
      kind: 'revoke',
      jobId: job.jobId,
      actor: { kind: 'user', userId: SAM },
      reason: 'stop',
    });
    expect(o).toMatchObject({ accepted: false, code: 'ERR_NOT_ELIGIBLE' });
    expect(w.asked.get(`channel:${SECURITY_CHANNEL}:${SAM}`)).toBe(2);
    expect((await statusOf(w, job.jobId)).status).toBe('open');
    const decisions = await w.ctx.db
      .selectFrom('decisions')
      .select(['kind', 'outcome', 'reason_code'])
      .where('named_job', '=', job.jobId)
      .execute();
    expect(decisions).toEqual([{ kind: 'revoke', outcome: 'rejected', reason_code: 'ERR_NOT_ELIGIBLE' }]);
  });

  it('a REVOKE whose answer did not change is decided on the first asking', async () => {
    const w = await world();
    const job = await opsJob(w.ctx);
    w.security.add(SAM);
    w.beforeLock(() => w.cache.streamEvent(event('user_removed', { user_id: U.alice }, SECURITY_CHANNEL)));
    const o = await endJobByCommand(w.ctx, {
      kind: 'revoke',
      jobId: job.jobId,
      actor: { kind: 'user', userId: SAM },
      reason: 'stop',
    });
    expect(o).toMatchObject({ accepted: true, code: 'JOB_REVOKED' });
    expect(w.asked.get(`channel:${SECURITY_CHANNEL}:${SAM}`)).toBe(1);
    expect((await statusOf(w, job.jobId)).status).toBe('revoked');
  });

  it(`a REVOKE whose answers change at every attempt: after ${DECIDE_ATTEMPTS} nothing is decided`, async () => {
    const w = await world();
    const job = await opsJob(w.ctx);
    w.security.add(SAM);
    w.beforeLock(() => w.cache.streamEvent(event('user_added', { user_id: SAM }, SECURITY_CHANNEL)));
    await expect(
      endJobByCommand(w.ctx, {
        kind: 'revoke',
        jobId: job.jobId,
        actor: { kind: 'user', userId: SAM },
        reason: 'stop',
      }),
    ).rejects.toMatchObject({ code: 'ERR_DIRECTORY_UNAVAILABLE' });
    expect(w.asked.get(`channel:${SECURITY_CHANNEL}:${SAM}`)).toBe(DECIDE_ATTEMPTS);
    expect((await statusOf(w, job.jobId)).status).toBe('open');
    const decisions = await w.ctx.db.selectFrom('decisions').select('id').execute();
    expect(decisions).toEqual([]);
  });

  it('a CONFIRM by a requester deactivated in that window is refused', async () => {
    const w = await world();
    const jobId = await agentJob(w.ctx);
    let deactivations = 0;
    w.beforeLock(() => {
      if (deactivations++ > 0) return;
      w.deactivated.add(U.grace);
      w.cache.streamEvent(event('user_updated', { user: { id: U.grace } }));
    });
    const o = await confirmRequester(w.ctx, { jobId, userId: U.grace });
    expect(o).toMatchObject({ accepted: false, code: 'ERR_REQUESTER_DEACTIVATED' });
    expect(w.asked.get(`user:${U.grace}`)).toBe(2);
    const job = await w.ctx.db
      .selectFrom('jobs')
      .select('requester_confirmed_at')
      .where('id', '=', jobId)
      .executeTakeFirstOrThrow();
    expect(job.requester_confirmed_at).toBeNull();
  });

  it(`a CONFIRM whose answers change at every attempt: after ${DECIDE_ATTEMPTS} nothing is decided`, async () => {
    const w = await world();
    const jobId = await agentJob(w.ctx);
    w.beforeLock(() => w.cache.streamEvent(event('user_updated', { user: { id: U.grace } })));
    await expect(confirmRequester(w.ctx, { jobId, userId: U.grace })).rejects.toMatchObject({
      code: 'ERR_DIRECTORY_UNAVAILABLE',
    });
    expect(w.asked.get(`user:${U.grace}`)).toBe(DECIDE_ATTEMPTS);
    const decisions = await w.ctx.db.selectFrom('decisions').select('id').execute();
    expect(decisions).toEqual([]);
  });
});
