import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import {
  OPS_WORKSPACE,
  type Sandbox,
  seedOpsWorkspace,
  startSandbox,
} from '@claw-approvals/mattermost-sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPolicy } from '../../src/policy/hash-policy.js';
import type { GroupsFile, Wpc } from '../../src/policy/types.js';
import { cli } from '../helpers/cli.js';
import { copyPolicies, tempDir } from '../helpers/fs.js';

let sandbox: Sandbox;
let seed: ReturnType<typeof seedOpsWorkspace>;

beforeAll(async () => {
  sandbox = await startSandbox();
  seed = seedOpsWorkspace(sandbox);
});
afterAll(() => sandbox.close());

/** The prod policy written with names (its team, its first channel, an approver by @name). */
async function namedDir(approver = '@alice'): Promise<string> {
  const shipped = await copyPolicies();
  const dir = await tempDir('claw-lint-names-');
  const prod = JSON.parse(await fs.readFile(path.join(shipped, 'mattermost-agent-prod.json'), 'utf8')) as Wpc;
  prod.channel_context.allowed_team_ids = ['ops'];
  prod.channel_context.allowed_channel_ids = ['ops/ops-requests'];
  await fs.writeFile(path.join(dir, 'mattermost-agent-prod.json'), JSON.stringify(prod));
  const groups = JSON.parse(await fs.readFile(path.join(shipped, 'groups.json'), 'utf8')) as GroupsFile;
  groups.groups['ops-oncall']!.members.push({ user_id: approver });
  await fs.writeFile(path.join(dir, 'groups.json'), JSON.stringify(groups));
  return dir;
}

const online = (dir: string) => ({
  POLICIES_DIR: dir,
  MATTERMOST_URL: sandbox.url,
  MATTERMOST_TOKEN: seed.botToken,
});

describe('policy lint and policy hash with Mattermost names', () => {
  it('resolves the names when Mattermost is reachable and prints the hash of the version that is signed', async () => {
    const dir = await namedDir();
    const res = await cli(['policy', 'lint'], online(dir));
    expect(res.err).toBe('');
    expect(res.code).toBe(0);
    const hash = (await cli(['policy', 'hash', path.join(dir, 'mattermost-agent-prod.json')], online(dir)))
      .out;
    expect(res.out).toContain(`mattermost-agent-prod  ${hash}`);
    const written = JSON.parse(
      await fs.readFile(path.join(dir, 'mattermost-agent-prod.json'), 'utf8'),
    ) as Wpc;
    // Not the hash of the file as written: the signed version carries the ids and the names.
    expect(hash).not.toBe(hashPolicy(written).hash);
    const canonical = (
      await cli(['policy', 'hash', '--canonical', path.join(dir, 'mattermost-agent-prod.json')], online(dir))
    ).out;
    expect(canonical).toContain(`"@alice":"${OPS_WORKSPACE.people.alice}"`);
    expect(canonical).toContain(`"allowed_channel_ids":["${OPS_WORKSPACE.channel}"]`);
  });

  it('fails on an unknown name, naming it and where it is used', async () => {
    const res = await cli(['policy', 'lint'], online(await namedDir('@nobody')));
    expect(res.code).toBe(1);
    expect(res.err).toContain(
      '$.groups["ops-oncall"].members[3].user_id: no Mattermost user is named @nobody [names:unknown]',
    );
    expect(res.err).toMatch(/FAIL {2}.*mattermost-agent-prod\.json\n.*group "ops-oncall".*@nobody/);
  });

  it('offline, lints everything else and says which names it could not check', async () => {
    const dir = await namedDir();
    const res = await cli(['policy', 'lint'], { POLICIES_DIR: dir });
    expect(res.code).toBe(0);
    expect(res.out).toMatch(
      /ok {4}.*mattermost-agent-prod\.json {2}mattermost-agent-prod {2}\(hash unknown: its names were not checked\)/,
    );
    expect(res.err).toBe(
      'note: 3 Mattermost name(s) not checked (Mattermost is not configured (MATTERMOST_URL), so names cannot be resolved): @alice, ops, ops/ops-requests',
    );
    // policy hash cannot say what it does not know.
    const hash = await cli(['policy', 'hash', path.join(dir, 'mattermost-agent-prod.json')], {
      POLICIES_DIR: dir,
    });
    expect(hash.code).toBe(1);
    expect(hash.err).toContain('[names:unchecked]');
  });

  it('with Mattermost unreachable, says so for each name instead of guessing', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const res = await cli(['policy', 'lint'], {
      ...online(await namedDir()),
      MATTERMOST_URL: `http://127.0.0.1:${port}`,
    });
    expect(res.code).toBe(0);
    expect(res.err).toMatch(
      /^note: 3 Mattermost name\(s\) not checked \(Mattermost could not be asked: cannot reach Mattermost/,
    );
    expect(res.err).not.toContain(seed.botToken);
  });
});
