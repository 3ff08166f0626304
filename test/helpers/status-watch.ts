import WebSocket from 'ws';
import { expect } from 'vitest';
import { MENTION_TOKEN } from '../../src/chat/mention-token.js';
import { readChain } from '../../src/proofs/event-chain.js';
import { boardOf, statusBoardMessage } from '../../src/presenter/status-board.js';
import type { MmPost } from '@claw-approvals/mattermost-sandbox';
import type { Person, World } from './bot-world.js';

/** The public URL every bot of the test worlds runs with (bot-world.ts). */
export const WORLD_PUBLIC_URL = 'https://claw.example.test';

/**
 * A person's Mattermost client, as far as edits go: a WebSocket that records every `post_edited`
 * the server sends, in the order it sent them. Tests read what people saw, not what the bot
 * meant to send.
 */
export interface EditWatch {
  /** The messages of every `post_edited` of `postId` received so far, oldest first. */
  edits(postId: string): string[];
  /** Resolves once every event the server sent before now has arrived (a ping round trip). */
  flush(): Promise<void>;
  close(): void;
}

export async function watchEdits(w: World, who: Person = 'alice'): Promise<EditWatch> {
  const url = new URL('/api/v4/websocket', w.sandbox.url.replace(/^http/, 'ws'));
  const socket = new WebSocket(url, { headers: { Authorization: `Bearer ${w.tokens[who]}` } });
  socket.on('error', () => undefined);
  const edited: MmPost[] = [];
  const replies = new Map<number, () => void>();
  let hello: () => void;
  const helloSeen = new Promise<void>((resolve) => (hello = resolve));
  socket.on('message', (raw) => {
    const frame = JSON.parse(String(raw)) as {
      event?: string;
      seq_reply?: number;
      data?: { post?: string };
    };
    if (frame.event === 'hello') hello();
    if (frame.event === 'post_edited' && frame.data?.post) edited.push(JSON.parse(frame.data.post) as MmPost);
    if (frame.seq_reply !== undefined) replies.get(frame.seq_reply)?.();
  });
  await helloSeen;
  let seq = 0;
  return {
    edits: (postId) => edited.filter((p) => p.id === postId).map((p) => p.message),
    flush: () =>
      new Promise<void>((resolve) => {
        seq += 1;
        replies.set(seq, resolve);
        socket.send(JSON.stringify({ seq, action: 'ping' }));
      }),
    close: () => socket.terminate(),
  };
}

/** `<@id>` as delivery renders it for this world's people (`@username`). */
export function renderNames(w: World, message: string): string {
  return message.replace(MENTION_TOKEN, (_, id: string) => {
    const user = w.sandbox.getUser(id);
    return user ? `@${user.username}` : 'an unknown user';
  });
}

/**
 * How the status post of `jobId` read after each event of its chain, as people see it: entry i
 * is the post after events 0..i. The post is a function of the chain, so every state it may
 * ever show is in this list, in the order the job went through them.
 */
export async function statusHistory(w: World, jobId: number): Promise<string[]> {
  const chain = await readChain(w.d.db, jobId);
  const job = await w.d.db.selectFrom('jobs').select('bundle_id').where('id', '=', jobId).executeTakeFirst();
  const out: string[] = [];
  for (let i = 1; i <= chain.length; i++) {
    const prefix = chain.slice(0, i);
    const ended = prefix.some((e) => e.event_type === 'job_ended');
    const board = boardOf(jobId, prefix, ended ? (job?.bundle_id ?? null) : null);
    if (board) out.push(renderNames(w, statusBoardMessage(board, WORLD_PUBLIC_URL)));
  }
  return out;
}

/**
 * Every edit people saw is a state the job was in, and they saw them in the job's order: an
 * older state never landed after a newer one. Returns, per edit, the index in `history`.
 */
export function expectForwardOnly(seen: readonly string[], history: readonly string[]): number[] {
  const at: number[] = [];
  let from = 0;
  for (const [n, message] of seen.entries()) {
    const edit = `edit ${n + 1} of ${seen.length}`;
    expect(history.includes(message), `${edit} is a state the job was in:\n${message}`).toBe(true);
    const i = history.indexOf(message, from);
    expect(i, `${edit} is no older than the one before it:\n${message}`).toBeGreaterThanOrEqual(0);
    at.push(i);
    from = i;
  }
  return at;
}

/** Successful status-post edits (PUT /api/v4/posts/{id}/patch answered 200) so far. */
export function patchesSent(w: World): number {
  return w.sandbox.requestCount({ method: 'PUT', pathPrefix: '/api/v4/posts/', status: 200 });
}
