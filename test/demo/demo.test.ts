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
  // The requester's click on Approve is refused, to them alone; an approver's click counts.
  expect(out).toContain(
    '@bruno clicked "Approve post-summary" -> only they see: Not recorded: the requester cannot approve',
  );
  expect(out).toContain('@chioma clicked "Approve post-summary" -> only they see: ✅');
  // The kill switch: paused, a typed approval is refused; resumed, work goes on.
  expect(out).toContain('**Work paused** by @erin: incident INC-7');
  expect(out).toContain('@chioma not counted: work is paused');
  expect(out).toContain('**Work resumed** by @erin');
  // The plan post changed in place: waiting, paused, waiting again, completed.
  const history = out.slice(out.indexOf('edited in place'), out.indexOf('Buttons, answered'));
  expect(history.match(/\*\*Status: [^*]+\*\*/g)).toEqual(
    expect.arrayContaining([
      '**Status: ⏳ waiting for approval**',
      '**Status: ⏸️ paused**',
      '**Status: ✅ completed**',
    ]),
  );
  expect(history.indexOf('paused')).toBeLessThan(history.indexOf('completed'));
  // A slash command, answered to the one who typed it.
  expect(out).toMatch(/@dmitri typed \/claw status job:1 -> only he sees:\n\s+\*\*job:1\*\* is/);
  expect(out).toMatch(/approved by @alice \(ops-oncall\), @chioma \(sec-reviewers\); CST `[0-9a-f-]{36}`/);
  expect(out).toContain('second redeem of the post-summary token -> HTTP 409 ERR_TOKEN_REPLAYED');
  expect(out).toMatch(
    /Proof bundle pb_[A-Za-z0-9_-]+: GET \/v1\/bundles\/pb_[A-Za-z0-9_-]+ -> HTTP 200; verified offline against JWKS: OK/,
  );
  // The token itself never appears: only jtis.
  expect(out).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\./);
});
