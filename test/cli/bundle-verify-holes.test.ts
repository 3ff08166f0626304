import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { getVerifiedPolicy } from '../../src/policy/registry.js';
import { type SealedBundleApp, sealedBundleApp } from '../browser/sealed-bundle-app.js';
import { cli } from '../helpers/cli.js';
import { U } from '../helpers/engine.js';
import { tempDir } from '../helpers/fs.js';
import { testGateway } from '../helpers/receipts.js';
import { eventOf, forge, type Obj } from '../proofs/adversarial-forge.js';
import { agent, foreignBundle, trust as foreignTrust } from '../proofs/verify-foreign-bundle.js';
import { type Listening, serveRaw } from './bundle-verify-fixture.js';

/**
 * H8's review of `bundle verify` on a reviewer's machine (issue 10): an OK that did not say
 * the signed policy was never checked, bundle text reaching the terminal unescaped, and a
 * bundle file whose objects repeat a key (the reader sees one value, the verdict is over another).
 */
const GATEWAY = ['--gateway', testGateway.did];
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

let s: SealedBundleApp;
let dir: string;
let jwks: string;
beforeAll(async () => {
  s = await sealedBundleApp();
}, 180_000);
// The reviewer's files, in a directory of each test's own (removed after it).
beforeEach(async () => {
  dir = await tempDir();
  jwks = path.join(dir, 'jwks.json');
  await fs.writeFile(jwks, JSON.stringify(s.engine.ctx.keyRing.jwks));
});
afterAll(async () => {
  await s?.close();
});

const reviewer = async () => ({ HOME: await tempDir('claw-reviewer-') });
const forged = (edit: (p: Obj) => void) =>
  forge(s.stored, { key: s.engine.ctx.keyRing.active, gateway: testGateway }, edit);
async function file(name: string, text: string): Promise<string> {
  const at = path.join(dir, name);
  await fs.writeFile(at, text);
  return at;
}
/** A server that answers the bundle link with `text` and 404 for anything else (the policy too). */
async function withholding(text: string): Promise<Listening & { link: string }> {
  const id = (JSON.parse(text) as { payload: { bundle_id: string } }).payload.bundle_id;
  const server = await serveRaw((req, res) => {
    if (req.url === `/v1/bundles/${id}`) res.writeHead(200, { 'content-type': 'application/json' }).end(text);
    else res.writeHead(404).end();
  });
  return { ...server, link: `${server.url}/v1/bundles/${id}` };
}
/** post-summary's rule weakened to 1 approval in job_created and both records, minted on alice alone. */
const weakened = (p: Obj) => {
  const mint = eventOf(p, 'token_minted', 3).body;
  const step = (p.metadata.claw_approvals.steps as Obj[]).find((x) => x.step === 'post-summary')!;
  const planned = (eventOf(p, 'job_created').body.steps as Obj[]).find((x) => x.id === 'post-summary')!;
  mint.approval.approvers.pop();
  mint.counted.pop();
  step.approval.approvers.pop();
  p.human_approval_receipts = (p.human_approval_receipts as Obj[]).filter(
    (r) => r.approver_subject !== U.chioma,
  );
  for (const rule of [planned.rule, mint.approval.rule, step.approval.rule]) rule.required_approvals = 1;
};

describe('bundle verify says when the signed policy was not checked', () => {
  const NOTE =
    '; gates and approval rules checked against the chain only (the signed policy was not supplied: pass --policy)';

  it("a rule weakened in the chain, the link's server withholding the policy: OK (exit 0), but the line says the rules were not checked against the policy", async () => {
    const text = forged(weakened);
    const server = await withholding(text);
    try {
      const env = await reviewer();
      const res = await cli(['bundle', 'verify', server.link, '--jwks', jwks, ...GATEWAY], env);
      expect(res.code).toBe(0);
      expect(res.out).toMatch(/^OK pb_/);
      expect(res.out.endsWith(NOTE)).toBe(true);
      expect(res.err).toContain('its rules were not recomputed');
      const json = await cli(['bundle', 'verify', server.link, '--jwks', jwks, ...GATEWAY, '--json'], env);
      expect(JSON.parse(json.out)).toMatchObject({ verdict: 'OK', policy_checked: false });
    } finally {
      await server.close();
    }
  });

  it('the same bundle with --policy (the signed policy it names): FAIL APPROVAL_RULE_MISMATCH', async () => {
    const text = forged(weakened);
    const hash = (JSON.parse(text) as Obj).payload.metadata.claw_approvals.policy.policy_hash_b64u as string;
    const policy = await file(
      'policy.json',
      JSON.stringify(await getVerifiedPolicy(s.engine.ctx.db, hash, s.engine.ctx.keyRing.trusts)),
    );
    const bundle = await file('weakened.json', text);
    const res = await cli(
      ['bundle', 'verify', bundle, '--jwks', jwks, ...GATEWAY, '--policy', policy],
      await reviewer(),
    );
    expect(res.code).toBe(1);
    expect(res.out).toMatch(/^FAIL APPROVAL_RULE_MISMATCH: step "post-summary"/);

    const genuine = await file('genuine.json', s.stored);
    const ok = await cli(
      ['bundle', 'verify', genuine, '--jwks', jwks, ...GATEWAY, '--policy', policy],
      await reviewer(),
    );
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/ gateway receipts verified$/);
    expect(ok.out).not.toContain(NOTE);
    const json = await cli(
      ['bundle', 'verify', genuine, '--jwks', jwks, ...GATEWAY, '--policy', policy, '--json'],
      await reviewer(),
    );
    expect(JSON.parse(json.out)).toMatchObject({ verdict: 'OK', policy_checked: true });
  });

  it('a bundle of another harness (no claw_approvals, so no policy to check): no note, policy_checked false', async () => {
    const bundle = await file('foreign.json', JSON.stringify(foreignBundle()));
    const gateways = [...foreignTrust.gatewaySigners].flatMap((did) => ['--gateway', did]);
    const res = await cli(['bundle', 'verify', bundle, '--trust', agent.did, ...gateways], await reviewer());
    expect(res.code).toBe(0);
    expect(res.out).not.toContain(NOTE);
    const json = await cli(
      ['bundle', 'verify', bundle, '--trust', agent.did, ...gateways, '--json'],
      await reviewer(),
    );
    expect(JSON.parse(json.out)).toMatchObject({ verdict: 'OK', policy_checked: false });
  });
});

describe('bundle verify never prints a control or bidi character from the bundle', () => {
  const HOSTILE = 'pb_\u009b2J\u001b[2K\u202eexe.txt\u2066\u0007';
  const gateways = [...foreignTrust.gatewaySigners].flatMap((did) => ['--gateway', did]);

  it('the bundle id on the OK line, and in --json, is escaped', async () => {
    const bundle = await file(
      'hostile-id.json',
      JSON.stringify(foreignBundle((p) => void (p.bundle_id = HOSTILE))),
    );
    const res = await cli(['bundle', 'verify', bundle, '--trust', agent.did, ...gateways], await reviewer());
    expect(res.code).toBe(0);
    expect(res.out).not.toMatch(UNSAFE);
    expect(res.out).toMatch(/^OK pb_\\u009b2J\\u001b\[2K\\u202eexe\.txt\\u2066\\u0007: signed by /);
    const json = await cli(
      ['bundle', 'verify', bundle, '--trust', agent.did, ...gateways, '--json'],
      await reviewer(),
    );
    expect(json.out).not.toMatch(UNSAFE);
    expect(JSON.parse(json.out)).toMatchObject({ bundleId: HOSTILE });
  });

  it('a FAIL message naming a key of the bundle (a schema finding) is escaped, on stdout and stderr', async () => {
    const bundle = await file(
      'hostile-key.json',
      JSON.stringify(foreignBundle((p) => void (p[`x${HOSTILE}`] = 1))),
    );
    const res = await cli(['bundle', 'verify', bundle, '--trust', agent.did, ...gateways], await reviewer());
    expect(res.code).toBe(1);
    expect(res.out).toMatch(/^FAIL /);
    expect(res.out).toContain('\\u202e');
    expect(res.out).not.toMatch(UNSAFE);
    expect(res.err).not.toMatch(UNSAFE);
    const json = await cli(
      ['bundle', 'verify', bundle, '--trust', agent.did, ...gateways, '--json'],
      await reviewer(),
    );
    expect(json.out).not.toMatch(UNSAFE);
    expect(JSON.parse(json.out)).toMatchObject({ verdict: 'FAIL' });
  });
});

describe('bundle verify refuses a bundle text whose objects repeat a key', () => {
  const twice = (text: string) =>
    text.replace('"agent_did":', '"agent_did":"did:key:z6MkMallory","agent_did":');

  it('a file: FAIL BUNDLE_ENVELOPE_MALFORMED naming the key and where it is, though JSON.parse would verify the last value', async () => {
    const text = twice(s.stored);
    expect(text).not.toBe(s.stored);
    const bundle = await file('twice.json', text);
    const res = await cli(['bundle', 'verify', bundle, '--jwks', jwks, ...GATEWAY], await reviewer());
    expect(res.code).toBe(1);
    expect(res.out).toBe(
      `FAIL BUNDLE_ENVELOPE_MALFORMED: duplicate key "agent_did" in payload of ${bundle}: JSON.parse keeps the last value, a reader of the file sees the first`,
    );
  });

  it('a link answer, the key spelled with an escape the second time', async () => {
    const text = s.stored.replace('"agent_did":', '"agent_did":"did:key:z6MkMallory","agent_d\\u0069d":');
    const server = await withholding(text);
    try {
      const res = await cli(
        ['bundle', 'verify', server.link, '--jwks', jwks, ...GATEWAY, '--json'],
        await reviewer(),
      );
      expect(res.code).toBe(1);
      expect(JSON.parse(res.out)).toMatchObject({
        verdict: 'FAIL',
        reason: 'BUNDLE_ENVELOPE_MALFORMED',
        cbReason: null,
        checks: [{ id: 'input.duplicate_keys', ok: false }],
      });
    } finally {
      await server.close();
    }
  });

  it('control: the stored bundle, whose objects share key names but never repeat one, verifies', async () => {
    const res = await cli(
      ['bundle', 'verify', await file('stored.json', s.stored), '--jwks', jwks, ...GATEWAY],
      await reviewer(),
    );
    expect(res.code).toBe(0);
  });
});
