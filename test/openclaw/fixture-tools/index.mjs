/* global fetch */
// Test-only tools for the OpenClaw gateway of test/openclaw: each appends what it ran with to
// a log file, so a test can tell a call that ran from one that was blocked. `send_message`
// can also fetch a gateway receipt for its call (as a tool going through clawproxy would).
import { appendFileSync } from 'node:fs';

const BINDINGS = Symbol.for('claw-approvals.openclaw.call-bindings');

function tool(name, config) {
  return {
    name,
    label: name,
    description: `Test tool ${name}: records its input.`,
    parameters: { type: 'object', additionalProperties: true, properties: {} },
    async execute(toolCallId, params) {
      if (params.fail === true) throw new Error(`${name} failed as asked`);
      const binding = globalThis[BINDINGS]?.get(toolCallId) ?? null;
      appendFileSync(config.logFile, `${JSON.stringify({ tool: name, params, toolCallId, binding })}\n`);
      const details = { ran: name };
      if (binding && config.receiptUrl && params.receipt === true) {
        const res = await fetch(config.receiptUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(binding),
        });
        details.claw_gateway_receipts = [await res.json()];
      }
      return { content: [{ type: 'text', text: `${name} ran` }], details };
    },
  };
}

export default {
  id: 'claw-fixture-tools',
  name: 'claw-approvals test tools',
  description: 'Tools named as the shipped policy names them, each recording that it ran.',
  register(api) {
    const config = api.pluginConfig;
    for (const name of ['send_message', 'search', 'write_file']) api.registerTool(tool(name, config));
  },
};
