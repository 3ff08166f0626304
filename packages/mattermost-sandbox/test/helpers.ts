import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import mm from '@mattermost/client';
import WebSocket from 'ws';
import type { Sandbox } from '../src/sandbox.js';

export type Client4 = InstanceType<typeof mm.Client4>;

/** A real Client4 pointed at the sandbox, with the bearer token and no cookies. */
export function client(sandbox: Sandbox, token: string): Client4 {
  const c = new mm.Client4();
  c.setUrl(sandbox.url);
  c.setToken(token);
  c.setIncludeCookies(false);
  return c;
}

export type Frame = Record<string, unknown> & {
  event?: string;
  seq?: number;
  seq_reply?: number;
  status?: string;
  data?: Record<string, unknown>;
  broadcast?: Record<string, unknown>;
};

/**
 * A raw `ws` client that records every frame in arrival order. `next()` hands them out one by
 * one, so a test can assert exactly what came, in which order, without sleeping.
 */
export class Probe {
  readonly frames: Frame[] = [];
  private cursor = 0;
  private wake: (() => void) | undefined;
  private seqOut = 0;
  readonly closed: Promise<{ code: number }>;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (raw) => {
      this.frames.push(JSON.parse(String(raw)) as Frame);
      this.wake?.();
    });
    this.closed = new Promise((resolve) => socket.on('close', (code) => resolve({ code })));
    this.closed.then(
      () => this.wake?.(),
      () => undefined,
    );
  }

  static async open(
    sandbox: Sandbox,
    opts: { token?: string; query?: Record<string, string | number>; challenge?: boolean } = {},
  ): Promise<Probe> {
    const url = new URL('/api/v4/websocket', sandbox.url.replace(/^http/, 'ws'));
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = {};
    if (opts.token !== undefined && !opts.challenge) headers.Authorization = `Bearer ${opts.token}`;
    const socket = new WebSocket(url, { headers });
    socket.on('error', () => undefined);
    const probe = new Probe(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('close', () => reject(new Error('socket closed before opening')));
    });
    if (opts.challenge && opts.token !== undefined) {
      probe.send({ seq: probe.nextSeq(), action: 'authentication_challenge', data: { token: opts.token } });
    }
    return probe;
  }

  nextSeq(): number {
    this.seqOut += 1;
    return this.seqOut;
  }

  send(message: unknown): void {
    this.socket.send(JSON.stringify(message));
  }

  /** The next frame in arrival order. The bound only fails a test: a loaded machine can take seconds. */
  async next(timeoutMs = 15_000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    while (this.cursor >= this.frames.length) {
      if (this.socket.readyState === WebSocket.CLOSED)
        throw new Error('socket closed while waiting for a frame');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return this.frames[this.cursor++]!;
  }

  /** Skips frames until one matches. */
  async until(match: (f: Frame) => boolean, timeoutMs = 15_000): Promise<Frame> {
    for (;;) {
      const frame = await this.next(timeoutMs);
      if (match(frame)) return frame;
    }
  }

  /** A ping round trip: every frame the server sent before the pong has arrived by then. */
  async ping(): Promise<Frame> {
    const seq = this.nextSeq();
    this.send({ seq, action: 'ping' });
    return this.until((f) => f.seq_reply === seq);
  }

  /** Frames not yet handed out, up to (not including) the reply to a fresh ping. */
  async drain(): Promise<Frame[]> {
    const seq = this.nextSeq();
    this.send({ seq, action: 'ping' });
    const out: Frame[] = [];
    for (;;) {
      const frame = await this.next();
      if (frame.seq_reply === seq) return out;
      out.push(frame);
    }
  }

  close(): void {
    this.socket.terminate();
  }
}

export const events = (frames: Frame[], name?: string): Frame[] =>
  frames.filter((f) => f.event !== undefined && (name === undefined || f.event === name));

/** A raw REST call, for routes Client4 does not wrap or answers it reshapes. */
export async function rest(
  sandbox: Sandbox,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${sandbox.url}/api/v4${path}`, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

export interface IntegrationCall {
  method: string;
  /** Path and query string. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface IntegrationReply {
  status?: number;
  body?: string;
  contentType?: string;
}

/** A stand-in integration (action, dialog or command endpoint) that records every call. */
export async function startIntegration(
  reply: (call: IntegrationCall) => IntegrationReply = () => ({}),
): Promise<{ url: string; calls: IntegrationCall[]; close(): Promise<void> }> {
  const calls: IntegrationCall[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const call = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      calls.push(call);
      const answer = reply(call);
      res.writeHead(answer.status ?? 200, { 'Content-Type': answer.contentType ?? 'application/json' });
      res.end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
