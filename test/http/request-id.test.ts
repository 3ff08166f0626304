import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import type { RateLimits } from '../../src/http/rate-limit.js';
import { AppMetrics } from '../../src/metrics/app-metrics.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, type TestEngine, U } from '../helpers/engine.js';
import { captureLogger } from '../helpers/log.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const COMMAND_TOKEN = 'cmdtoken0123456789abcdefgh';

const opened: { app: FastifyInstance; e: TestEngine }[] = [];
afterAll(async () => {
  for (const { app, e } of opened.splice(0)) {
    await app.close();
    await e.close();
  }
});

type Line = Record<string, unknown> & { level: number; msg: string; reqId?: string };

/**
 * The app over a real engine; fastify and the engine write to one captured logger, whose level
 * a test may change (each request's logger is made at the level of the moment).
 */
async function setup(opts: { rateLimits?: Partial<RateLimits> } = {}) {
  const logs = captureLogger('debug');
  const e = await createTestEngine({ log: logs.log });
  const app = buildApp({
    db: e.ctx.db,
    keyRing: e.ctx.keyRing,
    policies: e.ctx.policies,
    log: logs.log,
    engine: e.ctx,
    bodyLimit: 4096,
    slashCommand: { token: COMMAND_TOKEN, chat: null },
    metrics: new AppMetrics({ version: 'test', db: e.ctx.db, chat: false, defaultMetrics: false }),
    ...(opts.rateLimits ? { rateLimits: opts.rateLimits } : {}),
  });
  opened.push({ app, e });
  await app.ready();
  const agent = await createAgent(e.ctx.db, { id: OPS.executor, at: e.ctx.clock() });
  let seen = 0;
  /** Log lines written since the last call. */
  const newLines = (): Line[] => {
    const all = logs.lines();
    const fresh = all.slice(seen);
    seen = all.length;
    return fresh.map((l) => JSON.parse(l) as Line);
  };
  return { app, e, logs, newLines, ops: { authorization: `Bearer ${agent.key}` } };
}

const runbook = {
  channel_id: OPS.channel,
  requester_id: U.grace,
  runbook: {
    name: 'service-context',
    params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
  },
};

type World = Awaited<ReturnType<typeof setup>>;
let shared: World;
/** One app for the file (a database each would be slow on a busy machine); failed logins counted per address. */
const world = () => shared;
beforeAll(async () => {
  shared = await setup({ rateLimits: { failedAuth: 2 } });
}, 120_000);
beforeEach(() => {
  shared.logs.log.level = 'info';
  shared.newLines();
});

describe(`X-Request-Id (${dialectName})`, () => {
  it('adopts a well-formed id and answers with it', async () => {
    const { app } = world();
    for (const id of [
      'a',
      'b3f1c2de-5a6b-4c7d-8e9f-0a1b2c3d4e5f',
      '01HZY3K4J5M6N7P8Q9R0S1T2V3',
      'trace.span_7:edge-1',
      'x'.repeat(128),
    ]) {
      const res = await app.inject({ url: '/healthz', headers: { 'x-request-id': id } });
      expect(res.headers['x-request-id'], id).toBe(id);
    }
  });

  it('replaces a malformed, oversized, repeated or injected id with a fresh UUID, never echoing or logging it', async () => {
    const { app, logs, newLines } = world();
    logs.log.level = 'debug';
    const hostile = [
      '',
      ' ',
      'x'.repeat(129),
      'two words',
      'a,b',
      'id"}{"level":60,"msg":"forged',
      '../../etc/passwd',
      'tab\there',
      '<script>alert(1)</script>',
      '%0d%0aforged',
      'ümlaut',
    ];
    const answered = new Set<string>();
    for (const id of hostile) {
      const res = await app.inject({ url: '/v1/wpc/nope', headers: { 'x-request-id': id } });
      const echoed = String(res.headers['x-request-id']);
      expect(echoed, JSON.stringify(id)).toMatch(UUID);
      answered.add(echoed);
      const lines = newLines();
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) expect(line.reqId).toBe(echoed);
      expect(lines.find((l) => l.msg.startsWith('X-Request-Id not adopted'))).toMatchObject({
        level: 20,
        givenLength: id.length,
      });
    }
    // Each request its own id.
    expect(answered.size).toBe(hostile.length);
    for (const id of hostile.filter((h) => h.length > 3)) expect(logs.text()).not.toContain(id);
    // Two headers (as an array here; Node joins them with a comma on the wire, tested below).
    const two = await app.inject({ url: '/healthz', headers: { 'x-request-id': ['aaa', 'bbb'] } });
    expect(two.headers['x-request-id']).toMatch(UUID);
  });

  it('over a real connection: two headers and raw non-ASCII bytes are replaced', async () => {
    const { app } = world();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as net.AddressInfo;
    const raw = async (head: Buffer) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.end(head));
        let text = '';
        socket.on('data', (d) => (text += d.toString('latin1')));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
    const request = (headers: Buffer) =>
      Buffer.concat([
        Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'),
        headers,
        Buffer.from('\r\n'),
      ]);
    const idOf = (answer: string) => /\r\nx-request-id: ([^\r]*)\r\n/i.exec(answer)?.[1];
    const twice = await raw(request(Buffer.from('X-Request-Id: first\r\nX-Request-Id: second\r\n')));
    expect(twice).toMatch(/^HTTP\/1\.1 200/);
    expect(idOf(twice)).toMatch(UUID);
    const bytes = await raw(
      request(
        Buffer.concat([Buffer.from('X-Request-Id: caf'), Buffer.from([0xc3, 0xa9]), Buffer.from('\r\n')]),
      ),
    );
    expect(bytes).toMatch(/^HTTP\/1\.1 200/);
    expect(idOf(bytes)).toMatch(UUID);
    const plain = await raw(request(Buffer.from('X-Request-Id: edge-42\r\n')));
    expect(idOf(plain)).toBe('edge-42');
  });

  it('is on every answer: success, refusals by hooks, schema and parser, unknown routes, framework errors', async () => {
    const { app, ops } = world();
    const id = (n: number) => ({ 'x-request-id': `check-${n}` });
    const cases = [
      { expect: 200, req: { url: '/healthz' } },
      { expect: 200, req: { url: '/openapi.json' } },
      { expect: 201, req: { method: 'POST', url: '/v1/jobs', headers: ops, payload: runbook } },
      { expect: 400, req: { method: 'POST', url: '/v1/jobs', headers: ops, payload: { channel_id: 1 } } },
      {
        expect: 400,
        req: {
          method: 'POST',
          url: '/v1/jobs',
          headers: { ...ops, 'content-type': 'application/json' },
          payload: '{',
        },
      },
      {
        expect: 415,
        req: {
          method: 'POST',
          url: '/v1/jobs',
          headers: { ...ops, 'content-type': 'application/xml' },
          payload: '<a/>',
        },
      },
      {
        expect: 413,
        req: {
          method: 'POST',
          url: '/v1/jobs',
          headers: ops,
          payload: { ...runbook, pad: 'x'.repeat(8000) },
        },
      },
      { expect: 404, req: { url: '/no/such/route' } },
      { expect: 404, req: { url: '/v1/jobs/999', headers: ops } },
      { expect: 414, req: { url: `/v1/jobs/${'1'.repeat(200)}`, headers: ops } },
      { expect: 400, req: { url: '/v1/wpc/%E0%A4%A' } },
      // Two failed logins from one address, then its budget is spent.
      { expect: 401, req: { url: '/v1/jobs', remoteAddress: '192.0.2.77' } },
      { expect: 401, req: { url: '/v1/jobs', remoteAddress: '192.0.2.77' } },
      { expect: 429, req: { url: '/v1/jobs', remoteAddress: '192.0.2.77' } },
    ] as const;
    let n = 0;
    for (const c of cases) {
      n += 1;
      const req = c.req as {
        method?: 'GET' | 'POST';
        url: string;
        headers?: Record<string, string>;
        payload?: unknown;
        remoteAddress?: string;
      };
      const res = await app.inject({
        method: req.method ?? 'GET',
        url: req.url,
        headers: { ...req.headers, ...id(n) },
        ...(req.payload === undefined ? {} : { payload: req.payload as object }),
        ...(req.remoteAddress ? { remoteAddress: req.remoteAddress } : {}),
      });
      expect(res.statusCode, `${req.method ?? 'GET'} ${req.url}: ${res.body.slice(0, 200)}`).toBe(c.expect);
      expect(res.headers['x-request-id'], `${req.url} → ${c.expect}`).toBe(`check-${n}`);
    }
  });

  it('is on every log line of its request: fastify’s, the refusal’s and the engine’s', async () => {
    const { app, ops, newLines } = world();
    const created = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { ...ops, 'x-request-id': 'create-1' },
      payload: runbook,
    });
    expect(created.statusCode).toBe(201);
    const jobId = (created.json() as { job_id: number }).job_id;
    const during = newLines();
    expect(during.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['incoming request', 'job created', 'token minted', 'request completed']),
    );
    for (const line of during) expect(line, line.msg).toMatchObject({ reqId: 'create-1' });
    expect(during.find((l) => l.msg === 'job created')).toMatchObject({ jobId });

    // A claim, a refusal and the job's end, each under its own id.
    const claim = await app.inject({
      method: 'POST',
      url: `/v1/jobs/${jobId}/steps/post-summary/token`,
      headers: { ...ops, 'x-request-id': 'claim-too-early' },
    });
    expect(claim.statusCode).toBe(409);
    const refused = newLines();
    expect(refused.map((l) => l.msg)).toContain('request refused');
    for (const line of refused) expect(line.reqId).toBe('claim-too-early');

    const closed = await app.inject({
      method: 'POST',
      url: `/v1/jobs/${jobId}/close`,
      headers: { ...ops, 'x-request-id': 'close-1' },
    });
    expect(closed.statusCode).toBe(200);
    const closing = newLines();
    expect(closing.map((l) => l.msg)).toContain('job ended');
    for (const line of closing) expect(line.reqId).toBe('close-1');

    // The slash command's handler logs through the engine too.
    const command = await app.inject({
      method: 'POST',
      url: '/v1/mattermost/command',
      headers: {
        authorization: `Token ${COMMAND_TOKEN}`,
        'content-type': 'application/x-www-form-urlencoded',
        'x-request-id': 'slash-1',
      },
      payload: new URLSearchParams({
        trigger_id: 'dHJpZ2dlcg==',
        user_id: U.grace,
        user_name: 'grace',
        channel_id: OPS.channel,
        team_domain: 'ops',
        command: '/claw',
        text: 'help',
      }).toString(),
    });
    expect(command.statusCode).toBe(200);
    const slash = newLines();
    expect(slash.map((l) => l.msg)).toContain('slash command handled');
    for (const line of slash) expect(line.reqId).toBe('slash-1');
  });

  it('leaves the engine’s own logger untagged outside requests', async () => {
    const { e, newLines } = world();
    e.ctx.log.info({ probe: true }, 'outside any request');
    expect(newLines()).toEqual([expect.not.objectContaining({ reqId: expect.anything() })]);
  });
});

describe(`probe logging (${dialectName})`, () => {
  it('at info: /healthz, /readyz and /metrics write nothing; other routes and unknown ones do', async () => {
    const { app, newLines } = world();
    for (const url of ['/healthz', '/healthz?from=k8s', '/readyz', '/metrics']) {
      expect((await app.inject(url)).statusCode, url).toBe(200);
      expect(newLines(), url).toEqual([]);
    }
    for (const url of ['/.well-known/jwks.json', '/healthzz']) {
      await app.inject(url);
      const lines = newLines();
      expect(
        lines.map((l) => [l.level, l.msg]),
        url,
      ).toEqual([
        [30, 'incoming request'],
        [30, 'request completed'],
      ]);
    }
  });

  it('at debug: a probe’s request lines are debug, with its request id', async () => {
    const { app, logs, newLines } = world();
    logs.log.level = 'debug';
    for (const url of ['/healthz', '/readyz', '/metrics']) {
      await app.inject({ url, headers: { 'x-request-id': 'probe-1' } });
      const lines = newLines();
      expect(
        lines.map((l) => [l.level, l.msg, l.reqId]),
        url,
      ).toEqual([
        [20, 'incoming request', 'probe-1'],
        [20, 'request completed', 'probe-1'],
      ]);
    }
  });

  it('a refused probe still says so at info', async () => {
    const { app, newLines } = world();
    const res = await app.inject({
      url: '/readyz',
      headers: { authorization: 'Bearer wrong', 'x-request-id': 'r1' },
    });
    expect(res.statusCode).toBe(401);
    expect(newLines().map((l) => [l.level, l.msg, l.code, l.reqId])).toEqual([
      [30, 'request refused', 'ERR_UNAUTHENTICATED', 'r1'],
    ]);
  });
});
