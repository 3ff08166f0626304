import http from 'node:http';
import net from 'node:net';
import { inspect } from 'node:util';
import {
  ClawApiError,
  ClawClient,
  ClawUnreachableError,
  type Decider,
  decidersText,
  decisionOf,
  isClawError,
  type JobView,
} from '@claw-approvals/client';
import { afterEach, describe, expect, it } from 'vitest';

// What a real answer looks like is tested against the server (loop, errors); these are the
// answers a server (or what stands in front of it) should never give, and no answer at all.

const KEY = 'claw_agent_key_that_must_never_show_0123456789';
const TOKEN = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJlX2J5dGVz';

const shown = (err: unknown) =>
  [String(err), JSON.stringify(err), inspect(err, { depth: 6 }), (err as Error).stack ?? ''].join('\n');

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** An HTTP server answering every request with `handle`; its URL and the requests it saw. */
async function serve(handle: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{
  url: string;
  seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
}> {
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      handle(req, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, seen };
}

const json = (
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) => res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('no answer at all is ClawUnreachableError, never an API error', () => {
  it('connection refused', async () => {
    const client = new ClawClient({ baseUrl: `http://127.0.0.1:${await closedPort()}`, agentKey: KEY });
    const err = await client.redeem(TOKEN, 'clawproxy').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClawUnreachableError);
    expect(err).not.toBeInstanceOf(ClawApiError);
    expect(err).toMatchObject({
      code: 'ERR_UNREACHABLE',
      reason: 'network',
      request: 'POST /v1/tokens/redeem',
    });
    expect((err as Error).message).toContain('ECONNREFUSED');
    expect(isClawError(err, 'ERR_UNREACHABLE')).toBe(true);
    expect(shown(err)).not.toContain(KEY);
    expect(shown(err)).not.toContain(TOKEN);
  });

  it('a server that accepts and never answers: timeout', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const sockets: net.Socket[] = [];
    silent.on('connection', (s) => sockets.push(s));
    closers.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          silent.close(() => r());
        }),
    );
    const port = (silent.address() as net.AddressInfo).port;
    const client = new ClawClient({ baseUrl: `http://127.0.0.1:${port}`, agentKey: KEY, timeoutMs: 200 });
    const err = await client.claimToken(3, 'post-summary').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClawUnreachableError);
    expect(err).toMatchObject({ reason: 'timeout', request: 'POST /v1/jobs/3/steps/post-summary/token' });
    expect(shown(err)).not.toContain(KEY);
  });

  it('the caller’s abort rejects with the caller’s reason, not as unreachable', async () => {
    const silent = await serve(() => undefined);
    const client = new ClawClient({ baseUrl: silent.url, agentKey: KEY });
    const stop = new AbortController();
    const pending = client.getJob(1, { signal: stop.signal });
    stop.abort(new Error('shutting down'));
    await expect(pending).rejects.toThrow('shutting down');
  });
});

describe('answers that are not the API’s', () => {
  it('a proxy’s HTML 502 is ERR_BAD_RESPONSE with its status', async () => {
    const proxy = await serve((_req, res) =>
      res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>'),
    );
    const err = await new ClawClient({ baseUrl: proxy.url, agentKey: KEY })
      .getJob(1)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClawApiError);
    expect(err).toMatchObject({ status: 502, code: 'ERR_BAD_RESPONSE', request: 'GET /v1/jobs/1' });
  });

  it('a 200 that is not a JSON object is ERR_BAD_RESPONSE', async () => {
    const odd = await serve((_req, res) => res.writeHead(200).end('ok'));
    await expect(new ClawClient({ baseUrl: odd.url, agentKey: KEY }).getJob(1)).rejects.toMatchObject({
      status: 200,
      code: 'ERR_BAD_RESPONSE',
    });
  });

  it('a redirect is not followed: the key and the token never reach where it points', async () => {
    const elsewhere = await serve((_req, res) => json(res, 200, { redeemed: true }));
    const moved = await serve((_req, res) =>
      res.writeHead(307, { location: `${elsewhere.url}/v1/tokens/redeem` }).end(),
    );
    const err = await new ClawClient({ baseUrl: moved.url, agentKey: KEY })
      .redeem(TOKEN)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 307, code: 'ERR_BAD_RESPONSE' });
    expect(moved.seen).toHaveLength(1);
    expect(elsewhere.seen).toHaveLength(0);
  });

  it('a code this client does not list is kept; a malformed one is ERR_BAD_RESPONSE', async () => {
    const server = await serve((req, res) =>
      req.url === '/v1/jobs/1'
        ? json(res, 409, { error: { code: 'ERR_SOMETHING_NEW', message: 'a newer server' } })
        : json(res, 400, { error: { code: 'kaboom', message: 'not a code' } }),
    );
    const client = new ClawClient({ baseUrl: server.url, agentKey: KEY });
    await expect(client.getJob(1)).rejects.toMatchObject({
      status: 409,
      code: 'ERR_SOMETHING_NEW',
      message: 'a newer server',
    });
    await expect(client.getJob(2)).rejects.toMatchObject({ status: 400, code: 'ERR_BAD_RESPONSE' });
  });

  it('a server message that echoes the key or the token is shown redacted', async () => {
    const echo = await serve((req, res) =>
      json(res, 401, {
        error: {
          code: 'ERR_TOKEN_INVALID',
          message: `bad ${String(req.headers.authorization)} for ${TOKEN}`,
        },
      }),
    );
    const err = await new ClawClient({ baseUrl: echo.url, agentKey: KEY })
      .introspect(TOKEN)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TOKEN_INVALID', message: 'bad Bearer [redacted] for [redacted]' });
    expect(shown(err)).not.toContain(KEY);
    expect(shown(err)).not.toContain(TOKEN);
  });

  it('Retry-After as an HTTP date gives the seconds until then', async () => {
    const at = new Date(Date.now() + 42_000).toUTCString();
    const busy = await serve((_req, res) =>
      json(
        res,
        429,
        { error: { code: 'ERR_RATE_LIMITED', message: 'too many requests' } },
        { 'retry-after': at },
      ),
    );
    const err = (await new ClawClient({ baseUrl: busy.url, agentKey: KEY })
      .readyJobs()
      .catch((e: unknown) => e)) as ClawApiError;
    expect(err.code).toBe('ERR_RATE_LIMITED');
    expect(err.retryAfterSeconds).toBeGreaterThanOrEqual(40);
    expect(err.retryAfterSeconds).toBeLessThanOrEqual(43);
  });
});

describe('requests', () => {
  it('sends the key as a bearer, JSON bodies, its user agent, and a path prefix of baseUrl', async () => {
    const server = await serve((_req, res) => json(res, 200, { jobs: [] }));
    const client = new ClawClient({
      baseUrl: `${server.url}/claw/`,
      agentKey: KEY,
      userAgent: 'my-agent/1.2',
    });
    expect(await client.readyJobs({ waitSeconds: 2 })).toEqual([]);
    await client.closeJob('job:7', 'finished early').catch(() => undefined);
    expect(server.seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'GET /claw/v1/jobs?ready=1&wait=2',
      'POST /claw/v1/jobs/7/close',
    ]);
    expect(server.seen[0]!.headers).toMatchObject({
      authorization: `Bearer ${KEY}`,
      'user-agent': 'my-agent/1.2',
    });
    expect(server.seen[1]!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(server.seen[1]!.body)).toEqual({ reason: 'finished early' });
  });

  it('refuses bad ids, steps and waits before sending anything', async () => {
    const server = await serve((_req, res) => json(res, 200, {}));
    const client = new ClawClient({ baseUrl: server.url, agentKey: KEY });
    for (const job of ['job:abc', '../tokens/redeem', '0', '12 ', -1, 1.5, '99999999999999999']) {
      await expect(client.getJob(job), String(job)).rejects.toThrow(TypeError);
    }
    for (const step of ['../../tokens/redeem', 'Post-Summary', '', 'a b', 'x'.repeat(65)]) {
      await expect(client.claimToken(1, step), step).rejects.toThrow(TypeError);
    }
    await expect(client.getJob(1, { waitSeconds: 31 })).rejects.toThrow(RangeError);
    await expect(client.readyJobs({ waitSeconds: 1.5 })).rejects.toThrow(RangeError);
    await expect(client.waitForDecision(1, 'post-summary', { timeoutMs: -1 })).rejects.toThrow(RangeError);
    expect(server.seen).toHaveLength(0);
  });

  it('refuses a bad configuration without repeating the key', () => {
    const spaced = 'a key with spaces in it 0123456789';
    const refused = (() => {
      try {
        return new ClawClient({ baseUrl: 'http://x.test', agentKey: spaced });
      } catch (err) {
        return err;
      }
    })();
    expect(refused).toBeInstanceOf(TypeError);
    expect(shown(refused)).not.toContain(spaced);
    expect(() => new ClawClient({ baseUrl: 'ftp://x.test', agentKey: KEY })).toThrow(TypeError);
    expect(() => new ClawClient({ baseUrl: 'http://user:pw@x.test', agentKey: KEY })).toThrow(TypeError);
    expect(() => new ClawClient({ baseUrl: 'not a url', agentKey: KEY })).toThrow(TypeError);
    expect(() => new ClawClient({ baseUrl: 'http://x.test', agentKey: KEY, timeoutMs: 0 })).toThrow(
      RangeError,
    );
    expect(inspect(new ClawClient({ baseUrl: 'http://x.test', agentKey: KEY }), { depth: 6 })).not.toContain(
      KEY,
    );
  });
});

describe('decisionOf', () => {
  const view = (
    status: JobView['status'],
    step: JobView['steps'][number]['status'],
    endReason: string | null = null,
  ) =>
    ({
      id: 'job:1',
      job_id: 1,
      status,
      end_reason: endReason,
      steps: [{ id: 's', status: step }],
    }) as unknown as JobView;

  it.each([
    ['open', 'awaiting_approval', 'pending'],
    ['open', 'approved', 'approved'],
    ['open', 'claimed', 'approved'],
    ['completed', 'succeeded', 'approved'],
    ['failed', 'failed', 'approved'],
    ['denied', 'denied', 'denied'],
    ['denied', 'cancelled', 'denied'],
    ['revoked', 'revoked', 'revoked'],
    ['expired', 'cancelled', 'expired'],
    ['cancelled', 'cancelled', 'cancelled'],
    ['failed', 'cancelled', 'cancelled'],
  ] as const)('job %s, step %s → %s', (job, step, outcome) => {
    expect(decisionOf(view(job, step, job === 'open' ? null : 'why'), 's')).toMatchObject({ outcome });
  });

  const decided = (
    status: JobView['status'],
    step: JobView['steps'][number]['status'],
    decision: JobView['steps'][number]['decision'],
  ) =>
    ({
      id: 'job:1',
      job_id: 1,
      status,
      end_reason: status === 'open' ? null : 'why',
      steps: [{ id: 's', status: step, decision }],
    }) as unknown as JobView;
  const chioma: Decider = {
    user_id: 'c'.repeat(26),
    username: null,
    groups: ['sec-reviewers'],
    via: 'chat',
    at: 't',
  };

  it('answers the structured decision and who made it when the server sends one', () => {
    const by: Decider[] = [
      { user_id: 'a'.repeat(26), username: 'alice', groups: ['ops-oncall'], via: 'chat', at: 't1' },
      { user_id: 'd'.repeat(26), username: 'dmitri', groups: ['sec-reviewers'], via: 'button', at: 't2' },
    ];
    const approved = decisionOf(
      decided('open', 'approved', { outcome: 'approved', by: [...by], reason: null, at: 't2' }),
      's',
    )!;
    expect(approved).toMatchObject({ outcome: 'approved', by });
    // An auto step is approved by nobody.
    expect(
      decisionOf(decided('open', 'approved', { outcome: 'auto', by: [], reason: null, at: 't' }), 's'),
    ).toMatchObject({ outcome: 'approved', by: [] });
    // The record, not the statuses, says what stopped a step: here another step's denial.
    expect(
      decisionOf(
        decided('denied', 'cancelled', { outcome: 'denied', by: [chioma], reason: 'freeze', at: 't' }),
        's',
      ),
    ).toMatchObject({ outcome: 'denied', by: [chioma], reason: 'why' });
    expect(
      decisionOf(
        decided('failed', 'cancelled', { outcome: 'cancelled', by: [], reason: 'why', at: 't' }),
        's',
      ),
    ).toMatchObject({ outcome: 'cancelled', by: [] });
    // Pending: nobody yet.
    expect(decisionOf(decided('open', 'awaiting_approval', null), 's')).toMatchObject({
      outcome: 'pending',
      by: [],
    });
  });

  it('falls back to the statuses, naming nobody, when the decision is missing or unknown', () => {
    expect(decisionOf(view('denied', 'denied', 'why'), 's')).toMatchObject({ outcome: 'denied', by: [] });
    const unknown = { outcome: 'vetoed', by: [chioma], reason: null, at: 't' } as unknown as NonNullable<
      JobView['steps'][number]['decision']
    >;
    expect(decisionOf(decided('revoked', 'revoked', unknown), 's')).toMatchObject({
      outcome: 'revoked',
      by: [],
    });
  });

  it('gives the end reason only once the job ended, and nothing for a step the job lacks', () => {
    expect(decisionOf(view('open', 'approved'), 's')!.reason).toBeUndefined();
    expect(decisionOf(view('expired', 'cancelled', 'approval window elapsed'), 's')!.reason).toBe(
      'approval window elapsed',
    );
    expect(decisionOf(view('open', 'approved'), 'other')).toBeUndefined();
  });
});

describe('decidersText', () => {
  const at = '2026-11-28T07:00:00.000Z';
  it('names approvers by username with their groups, and how they decided', () => {
    expect(
      decidersText([
        { user_id: 'u1', username: 'alice', groups: ['ops-oncall'], via: 'chat', at },
        { user_id: 'u2', username: 'dmitri', groups: ['sec-reviewers'], via: 'button', at },
      ]),
    ).toBe('@alice (ops-oncall) and @dmitri (sec-reviewers) via chat and button');
  });

  it('names by id whoever has no username, and nobody as null', () => {
    expect(decidersText([{ user_id: 'admin:erin', username: null, groups: [], via: 'api', at }])).toBe(
      'admin:erin via api',
    );
    expect(decidersText([])).toBeNull();
  });
});
