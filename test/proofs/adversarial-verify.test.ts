import { describe, expect, it } from 'vitest';
import { type BrowserTrust, verifyInBrowser } from '../../src/http/bundle-page/browser-verify.js';
import { checkTwoPerson } from '../../src/proofs/two-person.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import type { Obj } from './adversarial-forge.js';
import { agent, foreignBundle, trust } from './verify-foreign-bundle.js';

/** Where a test splices its hostile JSON text into a bundle. */
const SPOT = '__H8_SPOT__';

/** A bundle signed by the trusted agent whose JSON text has `json` where `place` put SPOT. */
function spliced(
  place: (p: Record<string, unknown>, env: Record<string, unknown>) => void,
  json: string,
): string {
  const env = foreignBundle() as unknown as Record<string, unknown>;
  place(env.payload as Record<string, unknown>, env);
  const text = JSON.stringify(env);
  expect(text).toContain(`"${SPOT}"`);
  return text.replace(`"${SPOT}"`, json);
}

const browserTrust: BrowserTrust = {
  keys: [{ kty: 'OKP', crv: 'Ed25519', x: Buffer.from(agent.publicRaw).toString('base64url'), kid: 'agent' }],
  gateway_signers: [...trust.gatewaySigners],
};
const inBrowser = (text: string) =>
  verifyInBrowser(new TextEncoder().encode(text), browserTrust, checkTwoPerson);

/**
 * H8's adversarial review (issue 10): input built to exhaust or confuse the verifiers. Each
 * answer must be a verdict, FAIL with a named reason, never an exception, a hang or OK.
 */
describe('verifiers against input built to exhaust them', () => {
  const DEEP = 200_000;
  const deep = `${'['.repeat(DEEP)}${']'.repeat(DEEP)}`;
  type Place = (p: Record<string, unknown>, env: Record<string, unknown>) => void;
  const places: [string, Place][] = [
    ['payload.metadata', (p) => void (p.metadata = { x: SPOT })],
    ['a gateway receipt binding', (p) => void ((p.receipts as Obj[])[0]!.payload.binding.x = SPOT)],
    ['an event_chain entry', (p) => void ((p.event_chain as Record<string, unknown>[])[0]!.x = SPOT)],
    ['a human approval receipt', (p) => void (p.human_approval_receipts = [{ x: SPOT }])],
  ];

  it.each(places)(`JSON nested ${DEEP} deep in %s: FAIL, not a stack overflow`, async (_where, place) => {
    const text = spliced(place, deep);
    const v = verifyBundle(JSON.parse(text), trust);
    expect(v.ok).toBe(false);
    expect(v.checks.at(-1)).toMatchObject({ ok: false });
    expect((await inBrowser(text)).status).toBe('failed');
  });

  it(`JSON nested ${DEEP} deep beside the envelope's fields: the server fails the envelope, the browser answers`, async () => {
    const text = spliced((_p, env) => void (env.x = SPOT), deep);
    expect(verifyBundle(JSON.parse(text), trust)).toMatchObject({
      ok: false,
      reason: 'BUNDLE_ENVELOPE_MALFORMED',
    });
    // The browser reads the envelope's nine fields only: it answers without reading the rest.
    expect(['failed', 'verified']).toContain((await inBrowser(text)).status);
  });

  it('control: the re-signed vector itself verifies in both', async () => {
    const env = foreignBundle();
    expect(verifyBundle(env, trust).ok).toBe(true);
    expect((await inBrowser(JSON.stringify(env))).status).toBe('verified');
  });

  it('a did:key of 100 000 base58 digits as the signer (and agent) of a re-signed bundle: FAIL, the DID is invalid', () => {
    const did = `did:key:z6Mk${'8'.repeat(100_000)}`;
    const env = foreignBundle((p) => void (p.agent_did = did));
    const v = verifyBundle({ ...env, signer_did: did }, trust);
    expect(v).toMatchObject({ ok: false, reason: 'BUNDLE_SIGNER_DID_INVALID' });
  });

  it('a payload re-signed with 1e21, -0 and lone surrogates in it: both verifiers hash it alike', async () => {
    const env = foreignBundle((p) => {
      p.metadata = JSON.parse(
        String.raw`{"big":1e21,"neg_zero":-0,"tiny":5e-324,"lone":"a\ud800b\udc00","astral":"\ud83d\ude00"}`,
      );
    });
    const text = JSON.stringify(env);
    expect(text).toContain('"big":1e+21,"neg_zero":0');
    expect(text).toContain('"lone":"a\\ud800b\\udc00"');
    expect(verifyBundle(JSON.parse(text), trust).ok).toBe(true);
    expect((await inBrowser(text)).status).toBe('verified');
    // Signed over U+FFFD where the payload now has a lone surrogate: what a lossy UTF-8 encoding
    // of the payload text would confuse. Both verifiers escape it first, so the hashes differ.
    const replaced = foreignBundle((p) => void (p.metadata = { lone: 'a\ufffdb' }));
    const swapped = { ...replaced, payload: { ...replaced.payload, metadata: { lone: 'a\ud800b' } } };
    expect(verifyBundle(swapped, trust)).toMatchObject({ ok: false, reason: 'BUNDLE_HASH_MISMATCH' });
    expect(await inBrowser(JSON.stringify(swapped))).toMatchObject({
      status: 'failed',
      reason: 'BUNDLE_HASH_MISMATCH',
    });
  });
});
