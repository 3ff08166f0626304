import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { jwtVerify } from 'jose';
import { sql } from 'kysely';
import { createAgent } from '../src/agents/agent-keys.js';
import { buildApp } from '../src/app.js';
import type { EngineContext } from '../src/jobs/context.js';
import type { PolicyService } from '../src/policy/policy-service.js';
import { liveToken } from './engine-bench.js';
import { measureConcurrent, measureInterleaved } from './measure.js';

/** Kept-alive connections (one unless told): the same client for every server measured. */
export function keepAliveClient(connections = 1) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  return {
    post(
      url: string,
      body: string,
      headers: Record<string, string> = {},
    ): Promise<{ status: number; body: string }> {
      const u = new URL(url);
      return new Promise((resolve, reject) => {
        const req = http.request(
          {
            agent,
            host: u.hostname,
            port: u.port,
            path: u.pathname,
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(body),
              ...headers,
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
            );
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    },
    close: () => agent.destroy(),
  };
}

const urlOf = (server: http.Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

/**
 * POST /v1/tokens/introspect over a real socket (agent key, live CST), next to a bare node:http
 * and a bare fastify route answering a constant over the same client, and raw jose verify.
 */
export async function benchIntrospectHttp(deps: {
  engine: EngineContext;
  policies: PolicyService;
  budgetMs: number;
}) {
  const { engine, budgetMs } = deps;
  const live = await liveToken(engine);
  const { key: agentKey } = await createAgent(engine.db, {
    id: 'agent:ops-bench-introspect',
    at: new Date(),
  });
  const unlimited = Number.MAX_SAFE_INTEGER;
  const app = buildApp({
    db: engine.db,
    keyRing: engine.keyRing,
    policies: deps.policies,
    log: engine.log,
    engine,
    rateLimits: { perCaller: unlimited, perAddress: unlimited, failedAuth: unlimited },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const bareNode = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"active":true}');
    });
  });
  await new Promise<void>((r) => bareNode.listen(0, '127.0.0.1', r));
  // The floor of any HTTP introspection that asks the database at every call: the body read and
  // parsed, the verify with one primary-key read on its way meanwhile, a constant answer.
  const bareVerify = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const { token } = JSON.parse(Buffer.concat(chunks).toString()) as { token: string };
      Promise.all([
        sql`select paused from kill_switch where id = 1`.execute(engine.db),
        jwtVerify(token, engine.keyRing.active.publicKey, { algorithms: ['EdDSA'] }),
      ]).then(
        () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"active":true}');
        },
        () => {
          res.writeHead(500).end();
        },
      );
    });
  });
  await new Promise<void>((r) => bareVerify.listen(0, '127.0.0.1', r));
  const bareFastify = Fastify();
  bareFastify.post('/v1/tokens/introspect', async () => ({ active: true }));
  await bareFastify.listen({ host: '127.0.0.1', port: 0 });
  const client = keepAliveClient();
  const CONNECTIONS = 8;
  const pool = keepAliveClient(CONNECTIONS);
  const body = JSON.stringify({ token: live });
  const headers = { authorization: `Bearer ${agentKey}` };
  try {
    // Each URL is made once: the bare routes must not pay for it per request when ours does not.
    const ours = `${urlOf(app.server)}/v1/tokens/introspect`;
    const bareNodeUrl = `${urlOf(bareNode)}/v1/tokens/introspect`;
    const bareFastifyUrl = `${urlOf(bareFastify.server)}/v1/tokens/introspect`;
    const bareVerifyUrl = `${urlOf(bareVerify)}/v1/tokens/introspect`;
    const first = await client.post(ours, body, headers);
    if (first.status !== 200 || !(JSON.parse(first.body) as { active?: boolean }).active)
      throw new Error(`introspection over HTTP answered ${first.status}`);
    return {
      what:
        'POST /v1/tokens/introspect on a listening server in this process (agent key, live CST, rate limiter on with ' +
        'budgets no loop reaches), one kept-alive connection, one request at a time, in turns with the raw limits; ' +
        'the bare routes answer a constant over the same client, so the HTTP overhead itself is visible; ' +
        'raw_bare_node_http_verify_with_one_read: a bare node:http route that parses the body and does the raw ' +
        'verify with one primary-key read overlapped (the floor of an introspection that asks the database); ' +
        '*_8_connections: 8 kept-alive ' +
        'connections each sending its next request when answered (throughput with callers waiting at once)',
      // One request at a time, in turns with the raw limits (see measureInterleaved).
      ...(await measureInterleaved(
        {
          ours: async () => {
            const r = await client.post(ours, body, headers);
            if (r.status !== 200) throw new Error(`unexpected ${r.status}`);
          },
          raw_bare_node_http_constant: () => client.post(bareNodeUrl, body),
          raw_bare_fastify_constant: () => client.post(bareFastifyUrl, body),
          raw_bare_node_http_verify_with_one_read: async () => {
            const r = await client.post(bareVerifyUrl, body);
            if (r.status !== 200) throw new Error(`unexpected ${r.status}`);
          },
          raw_jose_eddsa_verify: () =>
            jwtVerify(live, engine.keyRing.active.publicKey, { algorithms: ['EdDSA'] }),
        },
        budgetMs * 4,
      )),
      ours_8_connections: await measureConcurrent(
        async () => {
          const r = await pool.post(ours, body, headers);
          if (r.status !== 200) throw new Error(`unexpected ${r.status}`);
        },
        CONNECTIONS,
        budgetMs,
      ),
      raw_bare_node_http_constant_8_connections: await measureConcurrent(
        () => pool.post(bareNodeUrl, body),
        CONNECTIONS,
        budgetMs,
      ),
    };
  } finally {
    client.close();
    pool.close();
    await app.close();
    await bareFastify.close();
    await new Promise((r) => bareNode.close(r));
    await new Promise((r) => bareVerify.close(r));
  }
}
