import type { FastifyInstance } from 'fastify';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import type { RateLimits } from '../../src/http/rate-limit.js';
import { loopbackUrl } from '../../src/mcp/http-route.js';
import { createTestDb, dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, type TestEngine } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

const ADMIN = 'admin-token-for-tests-0123456789';
// The first embedded database of a worker is migrated once (slow on a busy machine): in a hook, not a test.
beforeAll(async () => {
  await (await createTestDb()).close();
});
const opened: { e: TestEngine; app: FastifyInstance }[] = [];
afterEach(async () => {
  for (const { e, app } of opened.splice(0)) {
    await app.close();
    await e.close();
  }
});

async function setup(rateLimits: Partial<RateLimits> = {}) {
  const e = await createTestEngine();
  const app = buildApp({
    db: e.ctx.db,
    keyRing: e.ctx.keyRing,
    policies: e.ctx.policies,
    log: silentLogger(),
    engine: e.ctx,
    adminToken: ADMIN,
    rateLimits,
  });
  opened.push({ e, app });
  const { key } = await createAgent(e.ctx.db, { id: OPS.executor, at: e.ctx.clock() });
  // The tools call the API back on the address the server listens on.
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, key };
}

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'test', version: '1' } },
};
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

function post(
  app: FastifyInstance,
  headers: Record<string, string>,
  url = '/mcp',
  payload: unknown = INITIALIZE,
) {
  return app.inject({
    method: 'POST',
    url,
    headers: { ...MCP_HEADERS, ...headers },
    payload: payload as object,
  });
}

describe(`POST /mcp: authentication, limits and shape (${dialectName})`, () => {
  it('refuses no key, a wrong key and ADMIN_TOKEN with 401 in the API error shape', async () => {
    const { app, key } = await setup();
    const cases: Record<string, string>[] = [
      {},
      { authorization: 'Bearer cak_wrongwrongwrongwrongwrongwrongwrongwrongwro' },
      { authorization: `Bearer ${ADMIN}` },
      { authorization: `Basic ${key}` },
      { authorization: `Bearer ${key} ` },
    ];
    for (const headers of cases) {
      const res = await post(app, headers);
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual({ error: { code: 'ERR_UNAUTHENTICATED', message: expect.any(String) } });
      expect(res.body).not.toContain(key);
    }
  });

  it('charges failed keys to the address like every /v1 route, then refuses before looking keys up', async () => {
    const { app, key } = await setup({ failedAuth: 2 });
    for (let i = 0; i < 2; i += 1)
      expect((await post(app, { authorization: `Bearer cak_bad${i}` })).statusCode).toBe(401);
    const limited = await post(app, { authorization: `Bearer ${key}` });
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toMatch(/^\d+$/);
    expect(limited.json()).toMatchObject({ error: { code: 'ERR_RATE_LIMITED' } });
    // The same failures count on the API's routes too: one budget per address.
    const api = await app.inject({
      method: 'GET',
      url: '/v1/jobs',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(api.statusCode).toBe(429);
  });

  it('counts an agent against its own budget on /mcp', async () => {
    const { app, key } = await setup({ perCaller: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i += 1)
      statuses.push((await post(app, { authorization: `Bearer ${key}` })).statusCode);
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('answers 405 to GET and DELETE (stateless: no stream, no session), 400 to a bad query, 415 to a non-JSON body', async () => {
    const { app, key } = await setup();
    const auth = { authorization: `Bearer ${key}` };
    for (const method of ['GET', 'DELETE'] as const) {
      const res = await app.inject({ method, url: '/mcp', headers: auth });
      expect(res.statusCode).toBe(405);
      expect(res.headers.allow).toBe('POST');
      expect(res.json()).toMatchObject({ error: { code: 'ERR_BAD_REQUEST' } });
    }
    for (const query of [
      'channel=BAD',
      'requester=x',
      'permission_timeout=0',
      'permission_timeout=86401',
      'other=1',
    ]) {
      const res = await post(app, auth, `/mcp?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json()).toMatchObject({ error: { code: 'ERR_VALIDATION' } });
    }
    const text = await app.inject({
      method: 'POST',
      url: '/mcp',
      headers: { ...auth, 'content-type': 'text/plain', accept: MCP_HEADERS.accept },
      payload: 'hello',
    });
    expect(text.statusCode).toBe(415);
  });

  it('answers an MCP initialize over a listening server, as an MCP server named claw-approvals', async () => {
    const { app, key } = await setup();
    const res = await post(app, { authorization: `Bearer ${key}`, 'x-request-id': 'mcp-call-1' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['mcp-session-id']).toBeUndefined();
    // The SDK writes this answer itself; it still carries the request's id, like every answer.
    expect(res.headers['x-request-id']).toBe('mcp-call-1');
    const data = res.body
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)) as { result?: { serverInfo?: { name: string } } });
    expect(data[0]?.result?.serverInfo?.name).toBe('claw-approvals');
  });
});

describe('the loopback address the tools call back on', () => {
  it('reaches a wildcard listener on loopback, and any other address as it is', () => {
    expect(loopbackUrl({ address: '0.0.0.0', family: 'IPv4', port: 8080 })).toBe('http://127.0.0.1:8080');
    expect(loopbackUrl({ address: '::', family: 'IPv6', port: 8080 })).toBe('http://[::1]:8080');
    expect(loopbackUrl({ address: '10.1.2.3', family: 'IPv4', port: 80 })).toBe('http://10.1.2.3:80');
    expect(loopbackUrl({ address: 'fe80::1', family: 'IPv6', port: 1 })).toBe('http://[fe80::1]:1');
    expect(() => loopbackUrl(null)).toThrow(/listen on TCP/);
    expect(() => loopbackUrl('/tmp/socket')).toThrow(/listen on TCP/);
  });
});
