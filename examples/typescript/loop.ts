// An agent's loop on claw-approvals with @claw-approvals/client: submit, wait, claim, redeem, report.
// Environment: CLAW_URL, CLAW_AGENT_KEY, CLAW_CHANNEL_ID, CLAW_REQUESTER_ID, and CLAW_GATEWAY_URL, the
// gateway each step's call goes through (given the claim's run_id and event_hash_b64u, it answers the
// receipt it signed for the call).
import { ClawClient } from '@claw-approvals/client';

const env = (name: string): string => {
  if (!process.env[name]) throw new Error(`${name} is not set`);
  return process.env[name];
};
const HOUR = 3_600_000;
const agentKey = env('CLAW_AGENT_KEY');
const claw = new ClawClient({ baseUrl: env('CLAW_URL'), agentKey });
const params = {
  service: 'payments-api',
  query: 'p99 latency since 09:00',
  notify_channel: 'payments-oncall',
};
const job = await claw.submitJob({
  channel_id: env('CLAW_CHANNEL_ID'),
  requester_id: env('CLAW_REQUESTER_ID'),
  runbook: { name: 'service-context', params },
});
console.log(`${job.id}: waiting for approval in Mattermost`);
for (const { id } of job.steps) {
  const decision = await claw.waitForDecision(job, id, { timeoutMs: HOUR });
  if (decision.outcome !== 'approved')
    throw new Error(`${id}: ${decision.outcome} (${decision.reason ?? ''})`);
  const claim = await claw.claimToken(job, id);
  await claw.redeem(claim.token, 'clawproxy');
  const { run_id, event_hash_b64u } = claim;
  const gateway = await fetch(env('CLAW_GATEWAY_URL'), {
    method: 'POST',
    body: JSON.stringify({ run_id, event_hash_b64u }),
  });
  const result = await claw.reportResult(job, id, {
    status: 'succeeded',
    receipts: [(await gateway.json()) as object],
  });
  console.log(`${id}: ${result.status}, job ${result.job_status}`);
}
