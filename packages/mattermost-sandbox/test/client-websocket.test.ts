import mm from '@mattermost/client';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { world, type World } from './world.js';

/**
 * The official WebSocketClient against the sandbox. Authenticated by an `Authorization` header
 * on the upgrade (through newWebSocketFn): only then does Mattermost let a reconnect resume
 * the same connection (api4/websocket.go ignores connection_id on a socket without a session).
 */
let w: World;
let ws: InstanceType<typeof mm.WebSocketClient>;

beforeEach(async () => {
  vi.spyOn(console, 'log').mockImplementation(() => undefined);
  // The client reads WebSocket.OPEN from the global scope, which Node 20 does not have.
  vi.stubGlobal('WebSocket', WebSocket);
  w = await world();
});

afterEach(async () => {
  ws.close();
  await w.sandbox.close();
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
});

async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

it('resumes after a drop without a missed-message signal, and signals after a restart', async () => {
  const seen: { event: string; seq: number; data: Record<string, unknown> }[] = [];
  let missed = 0;
  let reconnects = 0;
  ws = new mm.WebSocketClient({
    minWebSocketRetryTime: 10,
    maxWebSocketRetryTime: 50,
    reconnectJitterRange: 0,
    newWebSocketFn: (url: string) =>
      new WebSocket(url, {
        headers: { Authorization: `Bearer ${w.bot.token}` },
      }) as unknown as globalThis.WebSocket,
  });
  ws.addMessageListener((msg) => seen.push(msg as never));
  ws.addMissedMessageListener(() => missed++);
  ws.addReconnectListener(() => reconnects++);
  ws.initialize(`${w.sandbox.url.replace(/^http/, 'ws')}/api/v4/websocket`);

  await until(() => seen.some((m) => m.event === 'hello'), 'hello');
  w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: 'one' });
  await until(() => seen.length === 2, 'the first post');

  w.sandbox.dropConnections({ userId: w.bot.user.id });
  w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: 'while away' });
  await until(() => seen.length === 3, 'the missed post');
  expect(seen.map((m) => [m.event, m.seq])).toEqual([
    ['hello', 0],
    ['posted', 1],
    ['posted', 2],
  ]);
  expect(reconnects).toBe(1);
  expect(missed).toBe(0);

  await w.sandbox.restart();
  await until(() => missed === 1, 'the missed-message signal');
  expect(seen.at(-1)).toMatchObject({ event: 'hello', seq: 0 });
  expect(seen.at(-1)!.data.connection_id).not.toBe(seen[0]!.data.connection_id);
});
