import net, { type AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { type KyselyPlugin, type RootOperationNode, TableNode } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent, revokeAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { Db } from '../../src/db/database.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

/**
 * Issue 13: introspection looks the caller's key up while it reads and verifies the token, and
 * answers only once the caller is known. A caller who is not is refused as such, whatever the
 * check found and whatever was wrong with the body.
 */

const ADMIN = 'admin-token-for-tests-0123456789';
const opened: { e: TestEngine; app: FastifyInstance }[] = [];
afterEach(async () => {
  for (const { e, app } of opened.splice(0)) {
    await app.close();
    await e.close();
  }
});

const readsAgents = (node: RootOperationNode) =>
  node.kind === 'SelectQueryNode' &&
  node.from?.froms.some((f) => TableNode.is(f) && f.table.identifier.name === 'agents') === true;

/**
 * The database as authentication uses it, with every read of `agents` held before it is sent
 * while `held`: a Kysely plugin could only hold its answer, and on PGlite's one connection that
 * would hold every other statement too.
 */
function heldLookups(db: Db) {
  let release: () => void = () => {};
  const state = { held: false, started: 0, released: new Promise<void>((r) => (release = r)) };
  const EXECUTE = new Set(['execute', 'executeTakeFirst', 'executeTakeFirstOrThrow']);
  const gated = <T extends object>(builder: T): T =>
    new Proxy(builder, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        if (EXECUTE.has(String(prop)))
          return async (...args: unknown[]) => {
            state.started += 1;
            if (state.held) await state.released;
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        return (...args: unknown[]) => {
          const out: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
          return typeof out === 'object' && out !== null && 'executeTakeFirst' in out ? gated(out) : out;
        };
      },
    });
  const wrapped = new Proxy(db, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (prop === 'selectFrom')
        return (table: string) => {
          const builder = target.selectFrom(table as 'agents');
          return table === 'agents' ? gated(builder) : builder;
        };
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { db: wrapped, state, release: () => release() };
}

/** A plugin that counts the engine's statements answered. */
function countedAnswers() {
  const state = { answered: 0 };
  const plugin: KyselyPlugin = {
    transformQuery: (args) => args.node,
    transformResult(args) {
      state.answered += 1;
      return Promise.resolve(args.result);
    },
  };
  return { plugin, state };
}

async function setup() {
  const e = await createTestEngine();
  const { ctx } = e;
  const held = heldLookups(ctx.db);
  const engineReads = countedAnswers();
  const app = buildApp({
    db: held.db,
    keyRing: ctx.keyRing,
    policies: ctx.policies,
    log: silentLogger(),
    engine: { ...ctx, db: ctx.db.withPlugin(engineReads.plugin) },
    adminToken: ADMIN,
  });
  opened.push({ e, app });
  const agent = await createAgent(ctx.db, { id: OPS.executor, at: ctx.clock() });
  const job = await opsJob(ctx);
  await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });
  const minted = await decideStep(ctx, {
    kind: 'approve',
    jobId: job.jobId,
    step: 'post-summary',
    userId: U.dmitri,
  });
  expect(minted.code).toBe('QUORUM_MET');
  const row = await ctx.db
    .selectFrom('tokens')
    .select('compact')
    .where('jti', '=', minted.minted!.jti)
    .executeTakeFirstOrThrow();
  return { ...e, app, held, engineReads, key: agent.key, token: row.compact! };
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
/** Well-formed, so that its refusal takes a database round trip, as an unknown key's does. */
const BOGUS = `cak_${'x'.repeat(43)}`;
const errorOf = (res: { statusCode: number; json: () => unknown }) => [
  res.statusCode,
  (res.json() as { error?: { code: string } }).error?.code,
];

describe(`POST /v1/tokens/introspect authenticates alongside its check (${dialectName})`, () => {
  it("reads the token's record while the key is looked up, and answers once the caller is known", async () => {
    const s = await setup();
    s.held.state.held = true;
    const before = s.engineReads.state.answered;
    let answered = false;
    const res = s.app
      .inject({
        method: 'POST',
        url: '/v1/tokens/introspect',
        headers: bearer(s.key),
        payload: { token: s.token },
      })
      .finally(() => (answered = true));
    await eventually(
      () => s.held.state.started > 0 && s.engineReads.state.answered > before,
      "the check's read answered while the key's lookup is held",
    );
    expect(answered).toBe(false);
    s.held.release();
    const r = await res;
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ active: true, step: 'post-summary' });
  });

  it('refuses an unknown or revoked key, or none, with a live token, and tells nothing of the token', async () => {
    const s = await setup();
    const introspect = (headers: Record<string, string>) =>
      s.app.inject({ method: 'POST', url: '/v1/tokens/introspect', headers, payload: { token: s.token } });
    for (const headers of [bearer(BOGUS), {}, { authorization: 'Basic abc' }]) {
      const r = await introspect(headers);
      expect(errorOf(r)).toEqual([401, 'ERR_UNAUTHENTICATED']);
      expect(r.body).not.toContain('active');
      expect(r.body).not.toContain('post-summary');
    }
    expect((await introspect(bearer(s.key))).json()).toMatchObject({ active: true });
    await revokeAgent(s.ctx, { id: OPS.executor, actor: 'test' });
    const revoked = await introspect(bearer(s.key));
    expect(errorOf(revoked)).toEqual([401, 'ERR_UNAUTHENTICATED']);
    expect(revoked.body).not.toContain('active');
    // ADMIN_TOKEN may introspect (the token was revoked with its agent).
    expect((await introspect(bearer(ADMIN))).json()).toMatchObject({
      active: false,
      code: 'ERR_TOKEN_REVOKED',
    });
  });

  it('refuses a caller without a valid key as such, whatever is wrong with the body; a known one learns what', async () => {
    const s = await setup();
    const bodies: { payload: string; contentType: string; known: [number, string] }[] = [
      { payload: '{"token":', contentType: 'application/json', known: [400, 'ERR_BAD_REQUEST'] },
      { payload: '{}', contentType: 'application/json', known: [400, 'ERR_VALIDATION'] },
      {
        payload: JSON.stringify({ token: s.token, extra: 1 }),
        contentType: 'application/json',
        known: [400, 'ERR_VALIDATION'],
      },
      {
        payload: 'token=x',
        contentType: 'application/x-www-form-urlencoded',
        known: [415, 'ERR_UNSUPPORTED_MEDIA_TYPE'],
      },
      {
        payload: JSON.stringify({ token: 'x'.repeat(70 * 1024) }),
        contentType: 'application/json',
        known: [413, 'ERR_PAYLOAD_TOO_LARGE'],
      },
    ];
    for (const b of bodies) {
      const send = (headers: Record<string, string>) =>
        s.app.inject({
          method: 'POST',
          url: '/v1/tokens/introspect',
          headers: { ...headers, 'content-type': b.contentType },
          payload: b.payload,
        });
      expect(errorOf(await send(bearer(BOGUS))), b.payload.slice(0, 30)).toEqual([
        401,
        'ERR_UNAUTHENTICATED',
      ]);
      expect(errorOf(await send({})), b.payload.slice(0, 30)).toEqual([401, 'ERR_UNAUTHENTICATED']);
      expect(errorOf(await send(bearer(s.key))), b.payload.slice(0, 30)).toEqual(b.known);
    }
  });

  it('stops reading the body of a caller the moment its key is refused, and reads it whole for a known one', async () => {
    const s = await setup();
    // A body that starts and never ends (a slow client): the refusal does not wait for it.
    const slow = (headers: Record<string, string>) => {
      const body = new PassThrough();
      body.write('{"token":"');
      const res = s.app.inject({
        method: 'POST',
        url: '/v1/tokens/introspect',
        headers: { ...headers, 'content-type': 'application/json' },
        payload: body,
      });
      return { body, res };
    };
    const unknown = slow(bearer(BOGUS));
    expect(errorOf(await unknown.res)).toEqual([401, 'ERR_UNAUTHENTICATED']);
    unknown.body.destroy();

    const known = slow(bearer(s.key));
    let answered = false;
    void known.res.finally(() => (answered = true));
    await eventually(() => s.held.state.started > 0, "the known key's lookup");
    await new Promise((r) => setTimeout(r, 50));
    expect(answered).toBe(false);
    known.body.end(`${s.token}"}`);
    expect((await known.res).json()).toMatchObject({ active: true });
  });

  it('over a real socket, closes the connection after refusing a body it did not read whole', async () => {
    const s = await setup();
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = s.app.server.address() as AddressInfo;
    /** Sends a request head and `body` (not necessarily all it announced); resolves with the answer's head and when the socket closed. */
    const send = (headers: Record<string, string>, length: number, body: string) =>
      new Promise<{ head: string; closed: Promise<void> }>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1');
        const closed = new Promise<void>((r) => socket.once('close', () => r()));
        let head = '';
        socket.on('data', (chunk: Buffer) => {
          head += chunk.toString('latin1');
          if (head.includes('\r\n\r\n')) resolve({ head: head.split('\r\n\r\n')[0]!, closed });
        });
        socket.on('error', reject);
        const lines = Object.entries({ ...headers, host: '127.0.0.1', 'content-length': String(length) }).map(
          ([k, v]) => `${k}: ${v}`,
        );
        socket.write(`POST /v1/tokens/introspect HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n${body}`);
      });
    // A known key and a body of another type, larger than the socket reads at once: 415, and the
    // unread rest does not stay on a kept-alive connection.
    const big = 'x'.repeat(200 * 1024);
    const wrongType = await send(
      { ...bearer(s.key), 'content-type': 'application/octet-stream' },
      big.length,
      big,
    );
    expect(wrongType.head).toMatch(/^HTTP\/1\.1 415 /);
    expect(wrongType.head.toLowerCase()).toContain('connection: close');
    await wrongType.closed;
    // An unknown key with a JSON body that stops halfway: refused at once, connection closed.
    const stalled = await send({ ...bearer(BOGUS), 'content-type': 'application/json' }, 1000, '{"token":"');
    expect(stalled.head).toMatch(/^HTTP\/1\.1 401 /);
    expect(stalled.head.toLowerCase()).toContain('connection: close');
    await stalled.closed;
  });

  it('refuses a request without a key before its body, and starts no check for it', async () => {
    const s = await setup();
    const before = s.engineReads.state.answered;
    for (const headers of [{}, { authorization: 'Basic abc' }, { authorization: 'Bearer two words' }]) {
      const r = await s.app.inject({
        method: 'POST',
        url: '/v1/tokens/introspect',
        headers,
        payload: { token: s.token },
      });
      expect(errorOf(r)).toEqual([401, 'ERR_UNAUTHENTICATED']);
    }
    expect(s.engineReads.state.answered).toBe(before);
    expect(s.held.state.started).toBe(0);
  });

  it('a key lookup that fails is the answer, not the check it overlapped', async () => {
    const s = await setup();
    // The agents table gone (a broken migration, a revoked grant): the lookup fails, the check does not.
    const failing: KyselyPlugin = {
      transformQuery(args) {
        if (readsAgents(args.node))
          throw Object.assign(new Error('relation "agents" is gone'), { code: '42P01' });
        return args.node;
      },
      transformResult: (args) => Promise.resolve(args.result),
    };
    const app = buildApp({
      db: s.ctx.db.withPlugin(failing),
      keyRing: s.ctx.keyRing,
      policies: s.ctx.policies,
      log: silentLogger(),
      engine: s.ctx,
      adminToken: ADMIN,
    });
    try {
      const r = await app.inject({
        method: 'POST',
        url: '/v1/tokens/introspect',
        headers: bearer(s.key),
        payload: { token: s.token },
      });
      expect(r.statusCode).toBe(500);
      expect(r.body).not.toContain('active');
    } finally {
      await app.close();
    }
  });
});
