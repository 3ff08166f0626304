/**
 * The Mattermost sandbox in its own process, so the bot being measured does not share its event
 * loop with the chat server. Prints one JSON line (its URL, the seeded workspace and everyone's
 * token), then takes one JSON command per line on stdin and answers each with one line:
 *
 * - `{"chatter": N, "as": "farid"}`: N posts in the ops channel, created as fast as the sandbox
 *   takes them (its own code path, no HTTP), answered with `{"posted_ms": …}`.
 *
 * Ends when stdin closes. Only the bench starts it.
 */
import readline from 'node:readline';
import { performance } from 'node:perf_hooks';
import { type OpsPerson, seedOpsWorkspace, startSandbox } from '@claw-approvals/mattermost-sandbox';

const sandbox = await startSandbox();
const ws = seedOpsWorkspace(sandbox);
process.stdout.write(`${JSON.stringify({ url: sandbox.url, ...ws })}\n`);

const answer = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  try {
    const cmd = JSON.parse(line) as { chatter?: number; as?: OpsPerson };
    const n = cmd.chatter;
    const who = cmd.as ?? 'farid';
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || !(who in ws.ids)) {
      answer({ error: 'unknown command' });
      continue;
    }
    const t0 = performance.now();
    for (let i = 0; i < n; i++)
      sandbox.createPost(ws.ids[who], {
        channel_id: ws.channel,
        message: `lunch at ${i % 24}:00? the deploy looks fine so far (${i})`,
      });
    answer({ posted_ms: performance.now() - t0 });
  } catch (err) {
    answer({ error: err instanceof Error ? err.message : String(err) });
  }
}
await sandbox.close();
