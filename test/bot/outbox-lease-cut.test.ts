import type { KyselyPlugin, PluginTransformQueryArgs, QueryId, RootOperationNode, UnknownRow } from 'kysely';
import type { QueryResult } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import type { LeaseOwner } from '../../src/chat/lease-owner.js';
import { OutboxDelivery } from '../../src/chat/outbox-delivery.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, type TestEngine } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import { BOT, commitPost, fakeMattermost, keyOf, outboxRow } from './outbox-fakes.js';

let e: TestEngine | null = null;
const deliveries: OutboxDelivery[] = [];
afterEach(async () => {
  for (const d of deliveries.splice(0)) await d.stop();
  await e?.close();
  e = null;
});

/**
 * The connection is cut after the lease statement committed and before its answer arrived:
 * the rows are leased to this process, which never hears which.
 */
class CutAfterLease implements KyselyPlugin {
  cuts = 1;
  private readonly cut = new Set<QueryId>();
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const node = args.node;
    // The lease statement: an update with a leading `with` that returns the rows it leased.
    if (this.cuts > 0 && node.kind === 'UpdateQueryNode' && node.with && node.returning) {
      this.cuts -= 1;
      this.cut.add(args.queryId);
    }
    return node;
  }
  async transformResult(args: { queryId: QueryId; result: QueryResult<UnknownRow> }) {
    if (this.cut.delete(args.queryId)) {
      throw Object.assign(new Error('Connection terminated unexpectedly'), { code: '57P01' });
    }
    return args.result;
  }
}

const owner: LeaseOwner = { id: 'cut 1', isGone: () => false };

describe(`the answer to a lease statement lost after it committed (${dialectName})`, () => {
  it('releases the rows it leased unseen, so their threads do not wait for the lease to run out', async () => {
    e = await createTestEngine();
    const mm = fakeMattermost();
    await commitPost(e, 'leased-unseen', 'threadaaaaaaaaaaaaaaaaaaaa');
    const cut = new CutAfterLease();
    const d = new OutboxDelivery({
      db: e.ctx.db.withPlugin(cut),
      chat: mm.chat,
      botUserId: BOT,
      clock: e.clock,
      log: silentLogger(),
      pollMs: 3_600_000,
      owner,
    });
    deliveries.push(d);
    d.start();
    // The lease committed, its answer was lost: the row is this process's, and not being sent.
    await eventually(
      async () => cut.cuts === 0 && (await outboxRow(e!, 'leased-unseen')).lease_owner,
      'the cut',
    );
    expect(mm.posts).toEqual([]);
    // The next lease (another thread's commit wakes it; the clock stands still) frees it.
    await commitPost(e, 'next', 'threadbbbbbbbbbbbbbbbbbbbb');
    await eventually(() => mm.posts.length === 2, 'both posts delivered', 5_000);
    expect(mm.posts.map(keyOf).sort()).toEqual(['leased-unseen', 'next']);
  });
});
