import { expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';

// `npm run demo` as the README describes it: embedded defaults, nothing installed, exit 0.
it('the demo plays a whole job through the sandbox and verifies its bundle', async () => {
  const r = await cli(['demo'], { POLICIES_DIR: 'policies' });
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  expect(r.out).toContain('@outsider not counted');
  expect(r.out).toContain('@bruno not counted: the requester cannot approve their own job');
  expect(r.out).toMatch(/approved by @alice \(ops-oncall\), @chioma \(sec-reviewers\); CST `[0-9a-f-]{36}`/);
  expect(r.out).toContain('second redeem of the post-summary token -> HTTP 409 ERR_TOKEN_REPLAYED');
  expect(r.out).toMatch(
    /Proof bundle pb_[A-Za-z0-9_-]+: GET \/v1\/bundles\/pb_[A-Za-z0-9_-]+ -> HTTP 200; verified offline against JWKS: OK/,
  );
  // The token itself never appears: only jtis.
  expect(r.out).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\./);
}, 60_000);
