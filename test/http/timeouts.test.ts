import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp, DEFAULT_HTTP_TIMEOUTS, type HttpTimeouts } from '../../src/app.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, opsJob, type TestEngine } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

const opened: { e: TestEngine; app: FastifyInstance }[] = [];
afterEach(async () => {
  for (const { e, app } of opened.splice(0)) {
    await app.close();
    await e.close();
  }
});

async function listening(timeouts?: Partial<HttpTimeouts>) {
  const e = await createTestEngine();
  const app = buildApp({
    db: e.ctx.db,
    keyRing: e.ctx.keyRing,
    policies: e.ctx.policies,
    log: silentLogger(),
    engine: e.ctx,
    ...(timeouts ? { timeouts } : {}),
  });
  opened.push({ e, app });
  const { key } = await createAgent(e.ctx.db, { id: OPS.executor, at: e.ctx.clock() });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as net.AddressInfo;
  return { ...e, app, port, key };
}

/**
 * Sends `head` at once, then one byte of `trickle` every 20 ms: at most `trickle.length`
 * bytes, so the loop ends on its own. Resolves with what the server answered and whether
 * the server (not the loop running out) closed the connection.
 */
function trickled(
  port: number,
  head: string,
  trickle: string,
): Promise<{ closedByServer: boolean; answer: string }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (d) => (answer += String(d)));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ closedByServer: sent < trickle.length, answer });
    });
    socket.on('connect', () => {
      socket.write(head);
      timer = setInterval(() => {
        if (sent >= trickle.length) {
          clearInterval(timer);
          socket.destroy();
          return;
        }
        socket.write(trickle[sent]!);
        sent += 1;
      }, 20);
    });
  });
}

describe(`HTTP timeouts (${dialectName})`, () => {
  it('the defaults bound headers, whole requests and idle sockets', async () => {
    const s = await listening();
    expect(s.app.server.headersTimeout).toBe(DEFAULT_HTTP_TIMEOUTS.headersMs);
    expect(s.app.server.requestTimeout).toBe(DEFAULT_HTTP_TIMEOUTS.requestMs);
    expect(s.app.server.timeout).toBe(DEFAULT_HTTP_TIMEOUTS.idleMs);
    expect(s.app.server.keepAliveTimeout).toBe(DEFAULT_HTTP_TIMEOUTS.keepAliveMs);
    expect(DEFAULT_HTTP_TIMEOUTS.idleMs).toBeGreaterThan(30_000);
  });

  it('closes 20 trickled connections (slow headers and slow bodies) with 408', async () => {
    const s = await listening({ headersMs: 200, requestMs: 400, checkIntervalMs: 50 });
    // 500 bytes at one per 20 ms would keep each connection busy for 10 s.
    const filler = 'a'.repeat(500);
    const slowHeaders = () => trickled(s.port, 'GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: ', filler);
    const slowBody = () =>
      trickled(
        s.port,
        `POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.key}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n',
        ' '.repeat(500),
      );
    const results = await Promise.all([
      ...Array.from({ length: 10 }, slowHeaders),
      ...Array.from({ length: 10 }, slowBody),
    ]);
    for (const r of results) {
      expect(r.closedByServer).toBe(true);
      expect(r.answer).toMatch(/^HTTP\/1\.1 408 /);
    }
    // The server still serves everyone else.
    expect((await fetch(`http://127.0.0.1:${s.port}/healthz`)).status).toBe(200);
  });

  it('a long-poll that waits longer than the request timeout still gets its answer', async () => {
    const s = await listening({ headersMs: 200, requestMs: 300, checkIntervalMs: 50 });
    const job = await opsJob(s.ctx);
    const res = await fetch(`http://127.0.0.1:${s.port}/v1/jobs/${job.jobId}?wait=1&after=1000000`, {
      headers: { authorization: `Bearer ${s.key}` },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { job_id: number }).job_id).toBe(job.jobId);
  });

  it('refuses an idle timeout that would cut a 30 s long-poll short', async () => {
    const s = await listening();
    const deps = { db: s.ctx.db, keyRing: s.ctx.keyRing, policies: s.ctx.policies, log: silentLogger() };
    expect(() => buildApp({ ...deps, timeouts: { idleMs: 30_000 } })).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
    );
  });
});
