import { loadConfig } from '../../src/config.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { type World } from '../helpers/bot-world.js';
import { stateEnv } from '../helpers/cli.js';
import type { TestDb } from '../helpers/db.js';
import { silentLogger } from '../helpers/log.js';
import { createLogger } from '../../src/logger.js';
import { Scrape } from './exposition.js';

/**
 * Polls `check` until it returns a value, every 150 ms (a scrape reads the database, and the
 * server counts scrapes against its rate limit); fails after `ms`.
 */
export async function poll<T>(
  check: () => Promise<T | null | undefined>,
  what: string,
  ms = 15_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

export const METRICS_TOKEN = 'metrics-token-for-tests-0123456789abcdef';

export interface Served {
  server: RunningServer;
  /** GET /metrics with these headers: status, content type and body. */
  get(headers?: Record<string, string>): Promise<{ status: number; type: string | null; body: string }>;
  /** GET /metrics with the token (if the server has one), parsed; fails unless it answers 200. */
  scrape(): Promise<Scrape>;
  stop(): Promise<void>;
}

/**
 * `claw-approvals serve` in-process, as main.ts runs it, on the dialect under test: with the
 * world's sandbox as its Mattermost when a world is given (API only without one).
 */
export async function serve(opts: { world?: World; token?: string | null } = {}): Promise<Served> {
  const token = opts.token === undefined ? METRICS_TOKEN : opts.token;
  const w = opts.world;
  const s = await stateEnv({
    HOST: '127.0.0.1',
    PORT: '0',
    ...(w
      ? {
          POLICIES_DIR: w.policiesDir,
          MATTERMOST_URL: w.sandbox.url,
          MATTERMOST_TOKEN: w.botToken,
          PUBLIC_URL: 'https://claw.example.test',
        }
      : {}),
    ...(token ? { METRICS_TOKEN: token } : {}),
  });
  const serverDb: TestDb | null = s.db;
  const server = await startServer(
    loadConfig(s.env),
    process.env.DEBUG_METRICS_TEST ? createLogger('info') : silentLogger(),
    {
      bot: {
        minBackoffMs: 20,
        maxBackoffMs: 300,
        pingIntervalMs: 1_000,
        outboxPollMs: 100,
        firstCatchUpMs: 60_000,
      },
    },
  );
  const get: Served['get'] = async (headers = {}) => {
    const res = await fetch(`${server.url}/metrics`, { headers });
    return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
  };
  return {
    server,
    get,
    scrape: async () => {
      const res = await get(token ? { authorization: `Bearer ${token}` } : {});
      if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${res.body}`);
      return new Scrape(res.body);
    },
    stop: async () => {
      await server.stop();
      await serverDb?.close();
    },
  };
}
