import { expect, it } from 'vitest';
import { runDemo } from '../../demo/run-demo.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';

// `npm run demo` as the README describes it: embedded defaults, nothing installed, no error.
it('the demo plays a whole job through the sandbox and verifies its bundle', async () => {
  const said: string[] = [];
  await runDemo({
    config: loadConfig({ POLICIES_DIR: 'policies' }),
    log: createLogger('silent'),
    say: (text) => said.push(text),
  });
  const out = said.join('\n');
  expect(out).toContain('@outsider not counted');
  expect(out).toContain('@bruno not counted: the requester cannot approve their own job');
  expect(out).toMatch(/approved by @alice \(ops-oncall\), @chioma \(sec-reviewers\); CST `[0-9a-f-]{36}`/);
  expect(out).toContain('second redeem of the post-summary token -> HTTP 409 ERR_TOKEN_REPLAYED');
  expect(out).toMatch(
    /Proof bundle pb_[A-Za-z0-9_-]+: GET \/v1\/bundles\/pb_[A-Za-z0-9_-]+ -> HTTP 200; verified offline against JWKS: OK/,
  );
  // The token itself never appears: only jtis.
  expect(out).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\./);
}, 60_000);
