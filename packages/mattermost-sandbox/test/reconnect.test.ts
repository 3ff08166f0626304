import { afterEach, describe, expect, it } from 'vitest';
import type { SandboxOptions } from '../src/sandbox.js';
import { events, Probe, type Frame } from './helpers.js';
import { world, type World } from './world.js';

let w: World;
const probes: Probe[] = [];

async function setup(opts: SandboxOptions = {}): Promise<void> {
  w = await world(opts);
}

async function open(...args: Parameters<typeof Probe.open>): Promise<Probe> {
  const probe = await Probe.open(...args);
  probes.push(probe);
  return probe;
}

afterEach(async () => {
  for (const p of probes.splice(0)) p.close();
  await w.sandbox.close();
});

const post = (message: string): void => {
  w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message });
};
const messageOf = (f: Frame): string => (JSON.parse(f.data!.post as string) as { message: string }).message;

/** Bob connects, reads hello and `count` posts, and his socket is dropped. */
async function bobSawThenDropped(count: number): Promise<{ connectionId: string; frames: Frame[] }> {
  const bob = await open(w.sandbox, { token: w.bob.token });
  const hello = await bob.next();
  for (let i = 0; i < count; i++) post(`before ${i}`);
  const frames = events(await bob.drain());
  w.sandbox.dropConnections({ userId: w.bob.user.id });
  await bob.closed;
  expect(w.sandbox.connectionCount(w.bob.user.id)).toBe(0);
  return { connectionId: hello.data!.connection_id as string, frames: [hello, ...frames] };
}

describe('resuming a dropped connection', () => {
  it('delivers what was missed with the next sequence numbers and no hello', async () => {
    await setup();
    const { connectionId } = await bobSawThenDropped(2);
    post('while away 1');
    post('while away 2');
    const bob = await open(w.sandbox, {
      token: w.bob.token,
      query: { connection_id: connectionId, sequence_number: 3 },
    });
    const got = events(await bob.drain());
    expect(got.map((f) => [f.event, f.seq, messageOf(f)])).toEqual([
      ['posted', 3, 'while away 1'],
      ['posted', 4, 'while away 2'],
    ]);
    post('after');
    expect((await bob.next()).seq).toBe(5);
  });

  it('replays from the dead queue with the original frames when the client lost some', async () => {
    await setup();
    const { connectionId, frames } = await bobSawThenDropped(3);
    post('while away');
    // The client says it only got up to seq 1 (hello and one post): 2 and 3 come again.
    const bob = await open(w.sandbox, {
      token: w.bob.token,
      query: { connection_id: connectionId, sequence_number: 2 },
    });
    const got = events(await bob.drain());
    expect(got.slice(0, 2)).toEqual([frames[2], frames[3]]);
    expect(got.map((f) => f.seq)).toEqual([2, 3, 4]);
    expect(messageOf(got[2]!)).toBe('while away');
  });

  it('starts a new connection with hello when the sequence number fell out of the dead queue', async () => {
    await setup({ deadQueueSize: 4 });
    const { connectionId } = await bobSawThenDropped(6);
    const bob = await open(w.sandbox, {
      token: w.bob.token,
      query: { connection_id: connectionId, sequence_number: 1 },
    });
    const hello = await bob.next();
    expect(hello).toMatchObject({ event: 'hello', seq: 0 });
    expect(hello.data!.connection_id).not.toBe(connectionId);
  });

  it('starts a new connection with hello when the sequence number is ahead of the server', async () => {
    await setup();
    const { connectionId } = await bobSawThenDropped(1);
    const bob = await open(w.sandbox, {
      token: w.bob.token,
      query: { connection_id: connectionId, sequence_number: 50 },
    });
    const hello = await bob.next();
    expect(hello).toMatchObject({ event: 'hello', seq: 0 });
    expect(hello.data!.connection_id).not.toBe(connectionId);
  });

  it('forgets a connection whose queue overflowed while it was away (256 events)', async () => {
    await setup();
    const { connectionId } = await bobSawThenDropped(0);
    for (let i = 0; i < 257; i++) post(`flood ${i}`);
    const bob = await open(w.sandbox, {
      token: w.bob.token,
      query: { connection_id: connectionId, sequence_number: 1 },
    });
    const hello = await bob.next();
    expect(hello).toMatchObject({ event: 'hello', seq: 0 });
    expect(hello.data!.connection_id).not.toBe(connectionId);
  });

  it('closes a socket that sends connection_id without a usable sequence_number', async () => {
    await setup();
    const { connectionId } = await bobSawThenDropped(0);
    const queries: Record<string, string>[] = [
      { connection_id: connectionId },
      { connection_id: connectionId, sequence_number: 'x' },
    ];
    for (const query of queries) {
      const bob = await open(w.sandbox, { token: w.bob.token, query });
      await bob.closed;
      expect(bob.frames).toEqual([]);
    }
  });

  it('gives a challenge-authenticated socket a new connection even with a known connection_id', async () => {
    await setup();
    const { connectionId } = await bobSawThenDropped(1);
    const bob = await open(w.sandbox, {
      token: w.bob.token,
      challenge: true,
      query: { connection_id: connectionId, sequence_number: 2 },
    });
    const hello = await bob.next();
    expect(hello).toMatchObject({ event: 'hello', seq: 0 });
    expect(hello.data!.connection_id).not.toBe(connectionId);
  });
});

describe('server restart', () => {
  it('forgets connection ids: a reconnect gets a new connection and hello, data survives', async () => {
    await setup();
    const { connectionId } = await bobSawThenDropped(1);
    const bobAgain = await open(w.sandbox, {
      token: w.bob.token,
      query: { connection_id: connectionId, sequence_number: 2 },
    });
    await bobAgain.drain();
    await w.sandbox.restart();
    await bobAgain.closed;
    expect(w.sandbox.connectionCount()).toBe(0);
    const bob = await open(w.sandbox, {
      token: w.bob.token,
      query: { connection_id: connectionId, sequence_number: 2 },
    });
    const hello = await bob.next();
    expect(hello).toMatchObject({ event: 'hello', seq: 0 });
    expect(hello.data!.connection_id).not.toBe(connectionId);
    expect(w.sandbox.postsIn(w.town.id)).toHaveLength(1);
  });
});
