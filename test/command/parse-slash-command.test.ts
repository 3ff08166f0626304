import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSlashCommand } from '../../src/commands/parse-slash-command.js';
import { configSecrets, loadConfig } from '../../src/config.js';
import {
  isCommandToken,
  presentedToken,
  readCommandToken,
} from '../../src/http/routes/mattermost-command-token.js';

describe('parseSlashCommand', () => {
  it('reads the bot’s words', () => {
    expect(parseSlashCommand('run service-context service=api query="a b"')).toEqual({
      kind: 'run',
      runbook: 'service-context',
      params: { service: 'api', query: 'a b' },
      problems: [],
    });
    expect(parseSlashCommand(' status job:12 ')).toEqual({ kind: 'status', jobId: 12 });
    expect(parseSlashCommand('status job:012')).toEqual({ kind: 'status', jobId: null });
    expect(parseSlashCommand('cancel job:3 wrong service')).toEqual({
      kind: 'cancel',
      jobId: 3,
      reason: 'wrong service',
    });
    expect(parseSlashCommand('')).toEqual({ kind: 'help' });
    expect(parseSlashCommand('HELP')).toEqual({ kind: 'help' });
    expect(parseSlashCommand('frobnicate')).toEqual({ kind: 'unknown', text: 'frobnicate' });
  });

  it('recognises decisions, exact or nearly, only to refuse them with the phrase', () => {
    expect(parseSlashCommand('APPROVE job:4 step:deploy')).toEqual({
      kind: 'decision',
      phrase: 'APPROVE job:4 step:deploy',
      jobId: 4,
    });
    expect(parseSlashCommand('approve job:4 step:deploy')).toEqual({
      kind: 'decision',
      phrase: 'APPROVE job:4 step:deploy',
      jobId: 4,
    });
    expect(parseSlashCommand('approve')).toEqual({
      kind: 'decision',
      phrase: 'APPROVE job:<n> step:<step>',
      jobId: null,
    });
    expect(parseSlashCommand('DENY job:4 step:deploy too risky')).toMatchObject({
      phrase: 'DENY job:4 step:deploy <reason>',
    });
    expect(parseSlashCommand('REVOKE job:4 leaked')).toMatchObject({ kind: 'decision', jobId: 4 });
    expect(parseSlashCommand('CONFIRM job:4')).toMatchObject({ kind: 'decision', phrase: 'CONFIRM job:4' });
    // Lookalike letters are still an approval meant, and still refused.
    expect(parseSlashCommand('АPPROVE job:4 step:deploy')).toMatchObject({ kind: 'decision' });
  });

  it('refuses over-long text and control characters unread', () => {
    expect(parseSlashCommand('x'.repeat(2001))).toEqual({ kind: 'too_long', length: 2001, limit: 2000 });
    for (const c of ['\u0000', '\u0007', '\n', '\t', '\u0085', '\u2028', '\u202e', '\u2066'])
      expect(parseSlashCommand(`status job:1${c}`), JSON.stringify(c)).toEqual({ kind: 'unprintable' });
  });
});

describe('the command token', () => {
  const token = 'i8j3q6bu1rebfzfi9o588c8jma';

  it('is read from the Authorization header only as `Token <token>`', () => {
    expect(presentedToken(`Token ${token}`)).toBe(token);
    for (const h of [
      undefined,
      '',
      `Bearer ${token}`,
      `token ${token}`,
      `Token  ${token}`,
      `Token ${token} x`,
    ])
      expect(presentedToken(h), String(h)).toBeNull();
  });

  it('is compared whole', () => {
    expect(isCommandToken(token, token)).toBe(true);
    expect(isCommandToken(token.slice(0, 25), token)).toBe(false);
    expect(isCommandToken(`${token}x`, token)).toBe(false);
    expect(isCommandToken('', token)).toBe(false);
  });

  it('is configured one way, as Mattermost makes it, or from a file', async () => {
    expect(loadConfig({}, '/srv').commandToken).toBeUndefined();
    expect(loadConfig({ MATTERMOST_COMMAND_TOKEN: token }, '/srv').commandToken).toEqual({
      kind: 'value',
      token,
    });
    // A secret: censored wherever the logger might meet it.
    expect(configSecrets(loadConfig({ MATTERMOST_COMMAND_TOKEN: token }, '/srv'))).toContain(token);
    expect(() => loadConfig({ MATTERMOST_COMMAND_TOKEN: 'short' }, '/srv')).toThrow(
      /MATTERMOST_COMMAND_TOKEN must be the 26-character token/,
    );
    expect(() =>
      loadConfig({ MATTERMOST_COMMAND_TOKEN: token, MATTERMOST_COMMAND_TOKEN_FILE: 't' }, '/srv'),
    ).toThrow(/MATTERMOST_COMMAND_TOKEN_FILE conflicts/);
    const dir = await mkdtemp(path.join(tmpdir(), 'claw-command-'));
    const file = path.join(dir, 'token');
    await writeFile(file, `${token}\n`);
    // loadConfig reads the file, like every *_FILE secret (test/config.test.ts: the file cases).
    const config = loadConfig({ MATTERMOST_COMMAND_TOKEN_FILE: 'token' }, dir);
    expect(config.commandToken).toEqual({ kind: 'value', token });
    expect(await readCommandToken(config.commandToken)).toBe(token);
    expect(await readCommandToken(undefined)).toBeNull();
    await writeFile(file, 'not a token\n');
    expect(() => loadConfig({ MATTERMOST_COMMAND_TOKEN_FILE: 'token' }, dir)).toThrow(
      /MATTERMOST_COMMAND_TOKEN_FILE .*: the MATTERMOST_COMMAND_TOKEN it holds must be the 26-character token/,
    );
    await expect(readCommandToken({ kind: 'file', file })).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
    });
    await expect(readCommandToken({ kind: 'file', file: path.join(dir, 'missing') })).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
    });
  });
});
