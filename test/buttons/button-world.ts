import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import { ACTIONS_PATH, ChatPresenter } from '../../src/presenter/chat-presenter.js';
import {
  createWorld,
  eventually,
  jobIdIn,
  ready,
  RUN,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { silentLogger } from '../helpers/log.js';

export const POLICY_FILE = 'mattermost-agent-prod.json';
/** The gated step of the `service-context` runbook, and its place in the plan (its button ids). */
export const STEP = 'post-summary';
export const STEP_INDEX = 3;

export interface ButtonWorld {
  w: World;
  b: RunningBot;
  app: FastifyInstance;
  secret: Uint8Array;
  /** Where the app listens: Mattermost (the sandbox) calls the buttons back here. */
  appUrl: string;
  close(): Promise<void>;
}

/** A port nobody listens on now, so the app's public URL is known before the app is built. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * The bot world of `test/bot`, with the app serving the button callbacks on a real port (the
 * sandbox POSTs to it, as Mattermost would) and the status posts' buttons on. `methods` is what
 * the channel's policy says in `execution.approval_methods` (absent: the field is left out).
 */
export async function createButtonWorld(opts: { methods?: string[] } = {}): Promise<ButtonWorld> {
  const w = await createWorld();
  const file = path.join(w.policiesDir, POLICY_FILE);
  const policy = JSON.parse(await fs.readFile(file, 'utf8')) as { execution: Record<string, unknown> };
  if (opts.methods) policy.execution.approval_methods = opts.methods;
  await fs.writeFile(file, JSON.stringify(policy, null, 2));

  const b = await startBot(w, { start: false });
  const secret = new Uint8Array(randomBytes(32));
  const appUrl = `http://127.0.0.1:${await freePort()}`;
  b.engine.events = new ChatPresenter({
    publicUrl: b.engine.publicUrl ?? null,
    buttons: { secret, callbackUrl: `${appUrl}${ACTIONS_PATH}`, trusts: b.engine.keyRing.trusts },
  });
  const app = buildApp({
    db: w.d.db,
    keyRing: b.engine.keyRing,
    policies: b.engine.policies,
    log: silentLogger(),
    engine: b.engine,
    mattermostActions: { secret, publicUrl: appUrl, chat: b.rest },
  });
  await app.listen({ host: '127.0.0.1', port: Number(new URL(appUrl).port) });
  b.bot.start();
  await ready(b);
  return {
    w,
    b,
    app,
    secret,
    appUrl,
    close: async () => {
      await b.stop();
      await app.close();
      await w.close();
    },
  };
}

/** Requests the runbook as `who` and waits for the plan (status) post. */
export async function requestJob(w: World, who: 'bruno' | 'farid' | 'grace' = 'bruno') {
  const root = w.post(who, RUN);
  const plan = await eventually(
    () => w.botReplies(root.id).find((p) => p.message.includes('Plan for job:')),
    'plan post',
  );
  return { root, plan, jobId: jobIdIn(plan) };
}

/** The status post's actions as a client sees them (ids and names; integrations stripped). */
export function actionsOn(w: World, postId: string): { id: string; name: string; integration?: unknown }[] {
  const post = w.sandbox.thread(rootOf(w, postId)).find((p) => p.id === postId);
  const attachments = (post?.props.attachments ?? []) as { actions?: { id: string; name: string }[] }[];
  return attachments.flatMap((a) => a.actions ?? []);
}

function rootOf(w: World, postId: string): string {
  for (const p of w.sandbox.postsIn(w.channel)) if (p.id === postId) return p.root_id || p.id;
  throw new Error(`no post ${postId}`);
}

/** Waits until the status post carries buttons (they come with the first edit after it exists). */
export async function buttonsShown(w: World, plan: ChatPost): Promise<void> {
  await eventually(() => actionsOn(w, plan.id).length > 0, 'buttons on the status post');
}

/** The newest ephemeral message a person was shown. */
export function lastEphemeral(w: World, userId: string): string {
  const posts = w.sandbox.ephemeralPostsFor(userId);
  return posts.at(-1)?.message ?? '';
}
