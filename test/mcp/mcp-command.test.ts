import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { tempDir } from '../helpers/fs.js';

// Every case here fails before the stdio transport starts, so the test's own stdin is never taken.
const KEY = 'cak_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG';

async function keyFile(content: string): Promise<string> {
  const file = path.join(await tempDir('claw-mcp-key-'), 'agent-key');
  await fs.writeFile(file, content, { mode: 0o600 });
  return file;
}

describe('claw-approvals mcp: its settings', () => {
  it('documents its settings and their environment variables, not the key as a flag', async () => {
    const r = await cli(['mcp', '--help'], {});
    expect(r.code).toBe(0);
    const help = r.out.replace(/\s+/g, ' ');
    expect(help).toContain('CLAW_AGENT_KEY (or the file CLAW_AGENT_KEY_FILE)');
    for (const name of [
      'CLAW_URL',
      'CLAW_AGENT_KEY_FILE',
      'CLAW_CHANNEL_ID',
      'CLAW_REQUESTER_ID',
      'CLAW_TEAM_ID',
      'CLAW_MATTERMOST_URL',
      'CLAW_PERMISSION_TIMEOUT',
    ])
      expect(help).toMatch(new RegExp(`env: ${name}\\)`));
    expect(r.out).not.toContain('--agent-key <');
  });

  it('refuses the key as an argument (others can read arguments), without echoing it', async () => {
    const r = await cli(['mcp', '--agent-key', KEY], {});
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      'error ERR_CONFIG_INVALID: invalid configuration: CLAW_AGENT_KEY must come from the environment',
    );
    expect(r.err + r.out).not.toContain(KEY);
  });

  it('needs a key, from a readable file of one line when given as a file', async () => {
    expect((await cli(['mcp'], {})).err).toContain('CLAW_AGENT_KEY is required');
    const missing = await cli(['mcp', '--agent-key-file', '/nonexistent/agent-key'], {});
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('CLAW_AGENT_KEY_FILE /nonexistent/agent-key cannot be read');
    for (const content of ['', '\n', `${KEY}\n${KEY}\n`, `${KEY} x`, 'x'.repeat(5000)]) {
      const r = await cli(['mcp', '--agent-key-file', await keyFile(content)], {});
      expect(r.code, JSON.stringify(content.slice(0, 20))).toBe(1);
      expect(r.err).toMatch(/ERR_CONFIG_INVALID/);
      expect(r.err).not.toContain(KEY);
    }
  });

  it('refuses bad settings before it serves anything, naming the setting', async () => {
    const file = await keyFile(`${KEY}\n`);
    const cases: [string[], string][] = [
      [['--permission-timeout', '0'], 'CLAW_PERMISSION_TIMEOUT must be whole seconds'],
      [['--permission-timeout', '86401'], 'CLAW_PERMISSION_TIMEOUT must be whole seconds'],
      [['--permission-timeout', '1.5'], 'CLAW_PERMISSION_TIMEOUT must be whole seconds'],
      [['--channel', 'ops-requests'], 'CLAW_CHANNEL_ID must be a Mattermost id'],
      [['--requester', 'GRACE'], 'CLAW_REQUESTER_ID must be a Mattermost id'],
      [['--team', 'x'], 'CLAW_TEAM_ID must be a Mattermost id'],
      [['--mattermost-url', 'chat.example.com'], 'CLAW_MATTERMOST_URL must be an http(s) URL'],
      [['--url', 'ftp://claw.example.com'], 'CLAW_URL must be an http(s) URL'],
    ];
    for (const [args, message] of cases) {
      const r = await cli(['mcp', '--agent-key-file', file, ...args], {});
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toContain(message);
    }
  });
});
