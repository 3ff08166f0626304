import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import {
  OPS_WORKSPACE,
  type Sandbox,
  seedOpsWorkspace,
  startSandbox,
} from '@claw-approvals/mattermost-sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Finding } from '../../src/cli/doctor/findings.js';
import type { GroupsFile, Wpc } from '../../src/policy/types.js';
import { openDatabase } from '../../src/db/database.js';
import { loadSigningKey } from '../../src/tokens/signing-key.js';
import { cli } from '../helpers/cli.js';
import { createTestDb, TEST_PG_URL, type TestDb, writePgliteDataDir } from '../helpers/db.js';
import { copyPolicies, tempDir } from '../helpers/fs.js';

interface Report {
  ok: boolean;
  problems: number;
  findings: Finding[];
}

/** The prod policy's second channel, created in the sandbox with the id the policy names. */
const APPROVALS = 'acshgfaj95444smnfg94nxbtmm';

let sandbox: Sandbox;
let seed: ReturnType<typeof seedOpsWorkspace>;
let healthz: http.Server;
let publicUrl: string;
let closedPort: number;
const dbs: (TestDb | null)[] = [];

/** A port nothing listens on: bound, then released. */
async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

beforeAll(async () => {
  sandbox = await startSandbox();
  seed = seedOpsWorkspace(sandbox);
  const approvals = sandbox.createChannel({
    id: APPROVALS,
    team_id: seed.team,
    name: 'ops-approvals',
    type: 'P',
  });
  sandbox.addChannelMember(approvals.id, seed.botUserId);
  // What PUBLIC_URL leads to: a server answering /healthz as claw-approvals does.
  healthz = http.createServer((req, res) => {
    res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(req.url === '/healthz' ? '{"ok":true}' : '{}');
  });
  await new Promise<void>((r) => healthz.listen(0, '127.0.0.1', r));
  publicUrl = `http://127.0.0.1:${(healthz.address() as AddressInfo).port}`;
  closedPort = await freePort();
  // One state directory for the whole file (tempDir would remove it after the first test).
  stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'claw-doctor-state-'));
  await loadSigningKey({ kind: 'generated', file: path.join(stateDir, 'keys', 'signing-key.jwk.json') });
  const db = TEST_PG_URL ? await createTestDb({ migrate: false }) : null;
  // As PGlite's initdb leaves it (copied: initdb takes seconds); `migrate` below migrates it.
  if (!db) await writePgliteDataDir(path.join(stateDir, 'pglite'));
  dbs.push(db);
  migrated = {
    DATA_DIR: stateDir,
    ...(db?.url ? { DATABASE_URL: db.url } : {}),
    MATTERMOST_URL: sandbox.url,
    MATTERMOST_TOKEN: seed.botToken,
    PUBLIC_URL: publicUrl,
  };
  expect((await cli(['migrate'], migrated)).code).toBe(0);
});

afterAll(async () => {
  await Promise.all(dbs.splice(0).map((d) => d?.close()));
  await new Promise<void>((r) => healthz.close(() => r()));
  await sandbox.close();
  await fs.rm(stateDir, { recursive: true, force: true });
});

/**
 * The prod policy and a groups.json in which every reference exists in the sandbox, written
 * partly by name: a configuration the doctor should find nothing wrong with.
 */
async function policiesDir(edit: (groups: GroupsFile) => void = () => {}): Promise<string> {
  const shipped = await copyPolicies();
  const dir = await tempDir('claw-doctor-policies-');
  const prod = JSON.parse(await fs.readFile(path.join(shipped, 'mattermost-agent-prod.json'), 'utf8')) as Wpc;
  prod.channel_context.allowed_team_ids = ['ops'];
  prod.channel_context.allowed_channel_ids = ['ops/ops-requests', APPROVALS];
  await fs.writeFile(path.join(dir, 'mattermost-agent-prod.json'), JSON.stringify(prod, null, 2));
  const p = OPS_WORKSPACE.people;
  const groups: GroupsFile = {
    groups_version: '1',
    groups: {
      'mattermost-agent-requesters': { members: [{ user_id: '@farid' }, { user_id: p.grace }] },
      'ops-oncall': { members: [{ user_id: '@alice' }, { user_id: p.bruno }] },
      'sec-reviewers': { members: [{ user_id: '@chioma' }, { user_id: p.dmitri }] },
      security: { members: [{ user_id: '@erin' }, { mattermost_channel: 'ops/ops-requests' }] },
    },
  };
  edit(groups);
  await fs.writeFile(path.join(dir, 'groups.json'), JSON.stringify(groups, null, 2));
  return dir;
}

let migrated: Record<string, string>;
let stateDir: string;

/** A complete, correct environment over one migrated state directory (each test changes its own copy). */
async function goodEnv(): Promise<Record<string, string>> {
  return { ...migrated, POLICIES_DIR: await policiesDir() };
}

async function doctor(env: Record<string, string>) {
  const res = await cli(['doctor', '--json'], env);
  for (const secret of [env.MATTERMOST_TOKEN, seed.botToken, ...Object.values(seed.tokens)])
    if (secret) expect(`${res.out}\n${res.err}`).not.toContain(secret);
  return { ...res, report: JSON.parse(res.out) as Report };
}

const problems = (r: Report) => r.findings.filter((f) => f.status === 'problem');

/** Regular expressions in an expected finding match its text. */
const matching = (expected: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(expected).map(([k, v]) => [k, v instanceof RegExp ? expect.stringMatching(v) : v]),
  );

describe('claw-approvals doctor, against the sandbox', () => {
  it('finds nothing wrong with a good configuration, and exits 0', async () => {
    const env = await goodEnv();
    const { code, report } = await doctor(env);
    expect(problems(report)).toEqual([]);
    expect(report).toMatchObject({ ok: true, problems: 0 });
    expect(code).toBe(0);
    const said = report.findings.map((f) => `${f.status} ${f.check} ${f.message}`);
    expect(said).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^ok mattermost\.server .* answers as Mattermost$/),
        'ok mattermost.bot @clawbot is a bot account',
        expect.stringMatching(/^ok mattermost\.team @clawbot is a member of team ops \(/),
        expect.stringMatching(/^ok mattermost\.channel @clawbot is a member of channel ops\/ops-requests \(/),
        `ok mattermost.channel @clawbot is a member of channel ${APPROVALS}`,
        `ok names user @alice is ${OPS_WORKSPACE.people.alice}`,
        expect.stringMatching(/^ok public_url .* answers as claw-approvals$/),
        expect.stringMatching(/^ok database .* migrations are current$/),
        'ok policies 1 policy loads and verifies',
        expect.stringMatching(/^ok files the signing key .* is private \(mode 600\)$/),
      ]),
    );
  });

  it('prints a readable report: each problem with its fix', async () => {
    const env = { ...(await goodEnv()), MATTERMOST_TOKEN: 'not-the-token' };
    const res = await cli(['doctor'], env);
    expect(res.code).toBe(1);
    expect(res.out).toMatch(/PROBLEM {2}mattermost\.token +Mattermost refuses MATTERMOST_TOKEN \(401/);
    expect(res.out).toMatch(/\n +fix: create an access token for the bot account/);
    expect(res.out).toMatch(/\d+ problem\(s\) found$/);
    expect(res.out).not.toContain('not-the-token');
  });

  const broken: [string, (env: Record<string, string>) => Promise<void> | void, Record<string, unknown>][] = [
    [
      'a wrong URL (a closed port)',
      (env) => void (env.MATTERMOST_URL = `http://127.0.0.1:${closedPort}`),
      { check: 'mattermost.server', message: /connection refused at 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/ },
    ],
    [
      'a URL ending in /api/v4',
      (env) => void (env.MATTERMOST_URL = `${sandbox.url}/api/v4`),
      {
        check: 'mattermost.url',
        message: /ends in \/api\/v4/,
        fix: expect.stringMatching(
          /^set MATTERMOST_URL=http:\/\/127\.0\.0\.1:\d+: the client adds \/api\/v4 itself$/,
        ),
      },
    ],
    [
      'https to a server without TLS',
      (env) => void (env.MATTERMOST_URL = sandbox.url.replace('http:', 'https:')),
      { check: 'mattermost.server', message: /TLS handshake .* failed/ },
    ],
    [
      'a bad token',
      (env) => void (env.MATTERMOST_TOKEN = 'x'.repeat(26)),
      { check: 'mattermost.token', message: /Mattermost refuses MATTERMOST_TOKEN \(401/ },
    ],
    [
      "a person's token instead of a bot's",
      (env) => void (env.MATTERMOST_TOKEN = seed.tokens.alice),
      { check: 'mattermost.bot', message: /belongs to @alice, a person's account, not a bot/ },
    ],
    [
      'an unknown name in groups.json',
      async (env) =>
        void (env.POLICIES_DIR = await policiesDir((g) =>
          g.groups['ops-oncall']!.members.push({ user_id: '@nobody' }),
        )),
      { check: 'names', message: /^user @nobody: no Mattermost user is named @nobody$/ },
    ],
    [
      'a group member id that is a bot',
      async (env) =>
        void (env.POLICIES_DIR = await policiesDir((g) =>
          g.groups['ops-oncall']!.members.push({ user_id: seed.botUserId }),
        )),
      { check: 'groups', message: /members\[2\]\.user_id: .* is a bot account/ },
    ],
    [
      'no PUBLIC_URL',
      (env) => void delete env.PUBLIC_URL,
      { check: 'public_url', message: /PUBLIC_URL is not set/ },
    ],
    [
      'a PUBLIC_URL where nothing listens',
      (env) => void (env.PUBLIC_URL = `http://127.0.0.1:${closedPort}`),
      { check: 'public_url', message: /nothing answers at .*\/healthz: connection refused .*ECONNREFUSED/ },
    ],
  ];

  for (const [name, breakIt, expected] of broken) {
    it(`names ${name} with its fix, and exits 1`, async () => {
      const env = await goodEnv();
      await breakIt(env);
      const { code, report, err } = await doctor(env);
      expect(code).toBe(1);
      expect(err).toMatch(/ERR_CONFIG_INVALID: doctor found \d+ problem\(s\)/);
      expect(report.ok).toBe(false);
      expect(problems(report)).toContainEqual(
        expect.objectContaining({ fix: expect.any(String), ...matching(expected), status: 'problem' }),
      );
    });
  }

  it('names a world-readable signing key', async () => {
    const env = await goodEnv();
    const key = path.join(env.DATA_DIR!, 'keys', 'signing-key.jwk.json');
    await fs.chmod(key, 0o644);
    try {
      const { code, report } = await doctor(env);
      expect(code).toBe(1);
      expect(problems(report)).toEqual([
        {
          check: 'files',
          status: 'problem',
          message: `the signing key ${key} is open to group or others (mode 644)`,
          fix: `chmod 600 ${key}`,
        },
      ]);
    } finally {
      await fs.chmod(key, 0o600);
    }
  });

  it("names an action secret (the buttons' MAC key) others can read", async () => {
    const env = await goodEnv();
    const secret = path.join(env.DATA_DIR!, 'keys', 'action-secret');
    // Absent: serve creates it; doctor only says so.
    const before = await doctor(env);
    expect(before.report.findings).toContainEqual(
      expect.objectContaining({ check: 'files', status: 'note', message: expect.stringContaining(secret) }),
    );
    await fs.writeFile(secret, 'x'.repeat(43), { mode: 0o644 });
    await fs.chmod(secret, 0o644);
    const { code, report } = await doctor(env);
    expect(code).toBe(1);
    expect(problems(report)).toEqual([
      {
        check: 'files',
        status: 'problem',
        message: `the action secret (buttons) ${secret} is open to group or others (mode 644)`,
        fix: `chmod 600 ${secret}`,
      },
    ]);
  });

  it('names a bot that is not in a channel the policy serves', async () => {
    const env = await goodEnv();
    sandbox.removeChannelMember(APPROVALS, seed.botUserId);
    try {
      const { code, report } = await doctor(env);
      expect(code).toBe(1);
      expect(problems(report)).toContainEqual({
        check: 'mattermost.channel',
        status: 'problem',
        message: `@clawbot is not a member of channel ${APPROVALS}, which it serves (403)`,
        fix: 'in that channel, type /invite @clawbot (a private channel must invite it)',
      });
    } finally {
      sandbox.addChannelMember(APPROVALS, seed.botUserId);
    }
  });

  it('with the embedded database held by a running server, says so instead of failing, and still lints the policies', async () => {
    const dataDir = await tempDir('claw-doctor-pglite-');
    await writePgliteDataDir(path.join(dataDir, 'pglite'));
    await loadSigningKey({ kind: 'generated', file: path.join(dataDir, 'keys', 'signing-key.jwk.json') });
    const env: Record<string, string> = { ...(await goodEnv()), DATA_DIR: dataDir };
    delete env.DATABASE_URL;
    expect((await cli(['migrate'], env)).code).toBe(0);
    const server = await openDatabase({ kind: 'pglite', dataDir });
    try {
      const { code, report } = await doctor(env);
      expect(problems(report)).toEqual([]);
      expect(code).toBe(0);
      expect(report.findings).toContainEqual(
        expect.objectContaining({
          check: 'database',
          status: 'note',
          message: expect.stringMatching(/in use by a running server/),
        }),
      );
      expect(report.findings).toContainEqual({
        check: 'policies',
        status: 'ok',
        message: '1 policy file is valid (the files only: registered versions and pins were not checked)',
      });
    } finally {
      await server.close();
    }
  });

  it('reports an invalid configuration setting by setting, without echoing values', async () => {
    const { code, report } = await doctor({ MATTERMOST_URL: 'ftp://chat', MATTERMOST_TOKEN: 'secret-value' });
    expect(code).toBe(1);
    expect(report.findings).toContainEqual(
      expect.objectContaining({
        check: 'config',
        status: 'problem',
        message: 'MATTERMOST_URL must be an http(s) URL',
      }),
    );
    expect(JSON.stringify(report)).not.toContain('secret-value');
  });
});
