import http from 'node:http';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

/** A post as a client receives it in a `posted` event. */
export interface SeenPost {
  id: string;
  root_id: string;
  user_id: string;
  channel_id: string;
  message: string;
  props?: Record<string, unknown>;
  create_at: number;
}

/** People's REST client: each posts with their own token, over kept-alive connections. */
export function restPoster(url: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const base = new URL(url);
  return {
    /** POST /api/v4/posts as the token's owner; resolves with the created post. */
    post(token: string, body: { channel_id: string; message: string; root_id?: string }): Promise<SeenPost> {
      const payload = JSON.stringify(body);
      return new Promise((resolve, reject) => {
        const req = http.request(
          {
            agent,
            host: base.hostname,
            port: base.port,
            method: 'POST',
            path: '/api/v4/posts',
            headers: {
              authorization: `Bearer ${token}`,
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(payload),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString();
              if (res.statusCode !== 201) reject(new Error(`POST /api/v4/posts answered ${res.statusCode}`));
              else resolve(JSON.parse(text) as SeenPost);
            });
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
    },
    close: () => agent.destroy(),
  };
}

/**
 * A person's WebSocket client of the sandbox: it sees posts (the bot's replies among them) the
 * way a Mattermost client does. `waitFor` resolves with the arrival time and the post.
 */
export async function personClient(url: string, token: string, timeoutMs = 30_000) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v4/websocket`);
  type Waiter = { match: (p: SeenPost) => boolean; resolve: (v: { at: number; post: SeenPost }) => void };
  const waiters = new Set<Waiter>();
  // Recent posts, so a reply that arrives before its waiter is registered is still found.
  const recent: { at: number; post: SeenPost }[] = [];
  let received = 0;
  ws.on('message', (raw) => {
    const at = performance.now();
    const m = JSON.parse(raw.toString()) as { event?: string; data?: { post?: string } };
    if (m.event !== 'posted' || typeof m.data?.post !== 'string') return;
    received++;
    const post = JSON.parse(m.data.post) as SeenPost;
    recent.push({ at, post });
    if (recent.length > 1_000) recent.shift();
    for (const w of waiters) {
      if (w.match(post)) {
        waiters.delete(w);
        w.resolve({ at, post });
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  // The hello event follows authentication: wait for it, so no post is missed.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the sandbox WebSocket never said hello')), timeoutMs);
    const onMessage = (raw: WebSocket.RawData) => {
      const m = JSON.parse(raw.toString()) as { event?: string };
      if (m.event === 'hello') {
        clearTimeout(timer);
        ws.off('message', onMessage);
        resolve();
      }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ seq: 1, action: 'authentication_challenge', data: { token } }));
  });
  return {
    get received() {
      return received;
    },
    /** The first post that `match`es (among the last 1,000 seen, or the next); fails after `timeoutMs`, naming `what`. */
    waitFor(what: string, match: (p: SeenPost) => boolean): Promise<{ at: number; post: SeenPost }> {
      const seen = recent.find((r) => match(r.post));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w: Waiter = {
          match,
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          const last = recent.slice(-3).map((r) => r.post.message.slice(0, 120));
          reject(
            new Error(`no post seen within ${timeoutMs} ms: ${what} (last seen: ${JSON.stringify(last)})`),
          );
        }, timeoutMs);
        waiters.add(w);
      });
    },
    close: () => ws.close(),
  };
}
